import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatField, Progress, type ProgressStream } from '../src/train/progress.js';

class Capture implements ProgressStream {
  out = '';
  constructor(
    readonly isTTY: boolean,
    readonly columns = 200,
  ) {}
  write(s: string): boolean {
    this.out += s;
    return true;
  }
}

test('numbers in fields are compact', () => {
  assert.equal(formatField(1.23456789), '1.2346');
  assert.equal(formatField(3e-4), '3.00e-4');
  assert.equal(formatField(0), '0');
  assert.equal(formatField(12), '12');
  assert.equal(formatField('x'), 'x');
  assert.equal(formatField(NaN), 'NaN');
});

test('not a TTY: plain lines at the first update, then at most every interval, and at the end', () => {
  const s = new Capture(false);
  let t = 0;
  const p = new Progress({ label: 'train', total: 100, stream: s, intervalS: 10, now: () => t });
  assert.equal(p.mode, 'lines');
  for (let step = 1; step <= 100; step++) {
    t += 1; // 1 s per step
    p.update(step, { loss: 2 - step / 100, lr: 3e-4 });
  }
  p.log('epoch 1 done');
  p.stop();
  const lines = s.out.trimEnd().split('\n');
  // step 1, then every 10 s: 11, 21, ..., 91, then 100 (the last), then the message.
  assert.deepEqual(
    lines.slice(0, -1).map((l) => Number(/^train (\d+)\/100/.exec(l)![1])),
    [1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100],
  );
  assert.equal(lines[1], 'train 11/100 (11.0%) | loss 1.8900 | lr 3.00e-4 | elapsed 0:00:11 | ETA 0:01:29');
  assert.equal(lines.at(-2), 'train 100/100 (100.0%) | loss 1 | lr 3.00e-4 | elapsed 0:01:40 | ETA 0:00:00');
  assert.equal(lines.at(-1), 'epoch 1 done');
  assert.ok(!s.out.includes('\r'));
});

test('resume: ETA uses only the progress made in this session; stop prints the last state once', () => {
  const s = new Capture(false);
  let t = 0;
  const p = new Progress({ label: 'train', total: 10, initial: 6, stream: s, now: () => t });
  t = 4;
  p.update(8);
  p.update(9); // within the interval: no line
  p.stop();
  p.stop();
  assert.deepEqual(s.out.trimEnd().split('\n'), [
    'train 8/10 (80.0%) | elapsed 0:00:04 | ETA 0:00:04',
    'train 9/10 (90.0%) | elapsed 0:00:04 | ETA 0:00:01',
  ]);
});

test('a TTY gets a redrawn bar with the fields; mode off prints nothing', () => {
  const s = new Capture(true);
  const p = new Progress({ label: 'sense', total: 4, stream: s });
  assert.equal(p.mode, 'bar');
  p.update(1, { loss: 1.23456 });
  p.log('hello');
  p.update(4, { loss: 0.5 });
  p.stop();
  assert.match(s.out, /sense \|.*\| 4\/4 100% \| loss 0\.5000 \|/);
  // eslint-disable-next-line no-control-regex -- the ESC of the erase-line sequence is what is checked
  assert.match(s.out, /\r\x1b\[2Khello\n/);
  const quiet = new Capture(true);
  const q = new Progress({ label: 'x', total: 2, stream: quiet, mode: 'off' });
  q.update(1);
  q.log('m');
  q.stop();
  assert.equal(quiet.out, '');
});
