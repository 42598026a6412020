/**
 * Expected failures print one line naming the file or option and exit 2 (a bug keeps its stack):
 * a full disk (ENOSPC names no path by itself), a YAML alias bomb, and `sense -o folder/` into a
 * folder that does not exist yet (created, as the README's example expects); per-layer folders a
 * killed `sense` left behind are removed on the next run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './model-helpers.js';

const CLI = ['--import', 'tsx', join(ROOT, 'src', 'cli', 'run.ts')];
const CKPT = join(ROOT, 'data', 'stories260k', 'checkpoint_legacy.bin');

function nuggets(args: string[], prefix: string[] = []) {
  const [cmd, ...rest] = [...prefix, process.execPath, ...CLI, ...args];
  return spawnSync(cmd, rest, { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
}

function oneLine(stderr: string, re: RegExp): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0], re);
  assert.doesNotMatch(stderr, /\n\s+at /);
}

const bwrapWorks = spawnSync('bwrap', ['--dev-bind', '/', '/', 'true']).status === 0;

test(
  'a full disk is one line naming the file, exit 2',
  { skip: !bwrapWorks && 'needs bwrap for a small tmpfs', timeout: 120_000 },
  () => {
    const full = mkdtempSync(join(tmpdir(), 'cli-enospc-'));
    // a 64 KiB tmpfs over the output folder: the converted model does not fit
    const r = nuggets(
      ['convert', CKPT, '-o', join(full, 'hf')],
      ['bwrap', '--dev-bind', '/', '/', '--size', '65536', '--tmpfs', full, '--'],
    );
    assert.equal(r.status, 2, r.stderr);
    oneLine(
      r.stderr,
      /^nuggets: .*cli-enospc-.*\/hf\/[^:]+: cannot write: no space left on the device \(ENOSPC\)$/,
    );
  },
);

test('a YAML alias bomb is one line naming the file, exit 2', { timeout: 60_000 }, () => {
  const file = join(mkdtempSync(join(tmpdir(), 'cli-yaml-')), 'bomb.yaml');
  const rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (const [x, y] of [
    ['b', 'a'],
    ['c', 'b'],
    ['d', 'c'],
    ['e', 'd'],
    ['f', 'e'],
    ['g', 'f'],
    ['h', 'g'],
  ])
    rows.push(`${x}: &${x} [${Array(9).fill(`*${y}`).join(',')}]`);
  writeFileSync(file, rows.join('\n') + '\n');
  const r = nuggets(['run', file, '--out', join(tmpdir(), 'never')]);
  assert.equal(r.status, 2, r.stderr);
  oneLine(r.stderr, /^nuggets: .*bomb\.yaml: invalid YAML: .*alias/i);
});

test(
  'sense -o sens/ creates the folder and writes sensitivity.safetensors there; stale .parts-* folders are removed',
  { timeout: 120_000 },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-sense-out-'));
    const seeds = join(dir, 'seeds.jsonl');
    writeFileSync(
      seeds,
      [
        { prompt: 'Tell a story.', answer: 'Once upon a time there was a cat.' },
        { prompt: 'Go on.', answer: 'The cat was happy.' },
      ]
        .map((s) => JSON.stringify(s))
        .join('\n') + '\n',
    );
    const teacher = join(ROOT, 'zoo', 'student-tiny');
    const out = join(dir, 'sens', 'nested') + '/';
    const r = nuggets([
      'sense',
      '--teacher',
      teacher,
      '--seeds',
      seeds,
      '-o',
      out,
      '--num-seeds',
      '2',
      '--max-length',
      '32',
      '--no-progress',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(join(out, 'sensitivity.safetensors')), readdirSync(out).join(', '));
    // a kill -9 leaves the per-layer folder: the next run of the same output removes it
    const stale = join(out, '.sensitivity.safetensors.parts-abc123');
    mkdirSync(stale);
    writeFileSync(join(stale, 'layer-0.bin'), 'x');
    const again = nuggets([
      'sense',
      '--teacher',
      teacher,
      '--seeds',
      seeds,
      '-o',
      out,
      '--num-seeds',
      '2',
      '--max-length',
      '32',
      '--no-progress',
    ]);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(existsSync(stale), false);
    assert.match(again.stderr, /removed .*\.parts-abc123, left by an interrupted earlier run/);
    assert.deepEqual(
      readdirSync(out).filter((n) => n.includes('.parts-')),
      [],
    );
  },
);
