import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { closestKey, closestValue, configValues, levenshtein, readConfigFile } from '../src/config/file.js';

const dir = mkdtempSync(join(tmpdir(), 'nuggets-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
const load = (p: string, command: Parameters<typeof configValues>[2] = 'train') =>
  configValues(p, readConfigFile(p), command);
const refused = (p: string, re: RegExp, command: Parameters<typeof configValues>[2] = 'train') =>
  assert.throws(
    () => load(p, command),
    (e: unknown) => e instanceof InputError && e.source.startsWith(p) && re.test(e.problem),
  );

test('levenshtein distances (hand values)', () => {
  assert.equal(levenshtein('kitten', 'sitting'), 3);
  assert.equal(levenshtein('', 'abc'), 3);
  assert.equal(levenshtein('flaw', 'lawn'), 2);
  assert.equal(levenshtein('same', 'same'), 0);
  assert.equal(levenshtein('ab', 'ba'), 2);
});

test('closest key, spelled in the style the user wrote', () => {
  const keys = ['learningRate', 'epochs', 'batchSize', 'microBatchSize', 'warmupRatio'];
  assert.equal(closestKey('learning_rat', keys), 'learning_rate');
  assert.equal(closestKey('lerningRate', keys), 'learningRate');
  assert.equal(closestKey('epoch', keys), 'epochs');
  assert.equal(closestKey('micro-batch', keys), 'micro-batch-size');
  assert.equal(closestKey('warmup', keys), 'warmup-ratio');
  assert.equal(
    closestValue('random_matchd', ['teacher', 'lora', 'pissa', 'random-matched']),
    'random-matched',
  );
});

test('a flat file: any key spelling, values type-checked, relative paths resolved against the file folder', () => {
  const p = file(
    'train.yaml',
    [
      'student: models/student',
      'data: /abs/train.jsonl',
      'out: ../runs/x',
      'learning_rate: 1e-4',
      'epochs: 5',
      'micro-batch-size: 4',
      'modules: [q_proj, v_proj]',
      'progress: false',
      '',
    ].join('\n'),
  );
  assert.deepEqual(load(p), {
    student: join(dir, 'models/student'),
    data: '/abs/train.jsonl',
    out: join(dir, '../runs/x'),
    learningRate: 1e-4,
    epochs: 5,
    microBatchSize: 4,
    modules: ['q_proj', 'v_proj'],
    progress: false,
  });
  // A single value is a one-element list; "self" is not a path.
  assert.deepEqual(load(file('x.yaml', 'teacher: self\nmodules: mlp\n'), 'extract'), {
    teacher: 'self',
    modules: ['mlp'],
  });
  assert.deepEqual(load(file('empty.yaml', '# nothing\n')), {});
});

test('unknown keys are refused with the closest valid key suggested', () => {
  refused(
    file('u1.yaml', 'learning_rat: 1e-4\n'),
    /unknown option "learning_rat"; did you mean "learning_rate"\?/,
  );
  refused(file('u2.yaml', 'epoch: 2\n'), /unknown option "epoch"; did you mean "epochs"\?/);
  refused(file('u3.yaml', 'numSeed: 8\n'), /did you mean "numSeeds"\?.*nuggets sense --help/, 'sense');
});

test('type errors name the key and the expected type', () => {
  refused(file('t1.yaml', 'epochs: three\n'), /option "epochs": expected an integer, got the string "three"/);
  refused(file('t2.yaml', 'epochs: 2.5\n'), /option "epochs": expected an integer, got number 2\.5/);
  refused(
    file('t3.yaml', 'learning-rate: "fast"\n'),
    /option "learning-rate": expected a number, got the string "fast"/,
  );
  refused(file('t4.yaml', 'progress: yes please\n'), /option "progress": expected true or false/);
  refused(
    file('t5.yaml', 'scheduler: cosin\n'),
    /option "scheduler": expected one of linear, cosine, constant, got the string "cosin" \(did you mean "cosine"\?\)/,
  );
  refused(
    file('t6.yaml', 'modules: [q_proj, qproj]\n'),
    /option "modules": expected a list of values from q_proj, .*got the string "qproj" \(did you mean "q_proj"\?\)/,
  );
  refused(file('t7.yaml', 'student: 3\n'), /option "student": expected a path \(string\), got number 3/);
  refused(file('t8.yaml', 'epochs: [1]\n'), /expected an integer, got a list/);
});

test('sectioned files: the command section is used, every section is checked, mixing is refused', () => {
  const p = file('study.yaml', 'sense:\n  num-seeds: 16\nextract:\n  rank: 8\ntrain:\n  epochs: 2\n');
  assert.deepEqual(load(p, 'train'), { epochs: 2 });
  assert.deepEqual(load(p, 'sense'), { numSeeds: 16 });
  assert.deepEqual(load(p, 'eval'), {});
  const typo = file('study2.yaml', 'extract:\n  rnak: 8\ntrain:\n  epochs: 2\n');
  assert.throws(
    () => load(typo, 'train'),
    (e: unknown) =>
      e instanceof InputError &&
      e.source === `${typo} (section extract)` &&
      /did you mean "rank"/.test(e.problem),
  );
  refused(
    file('mixed.yaml', 'train:\n  epochs: 2\nseed: 3\n'),
    /mixes command sections \(train\) with top-level options \(seed\)/,
  );
  refused(file('badsec.yaml', 'train: 3\n'), /section "train" must be a mapping/);
});

test('YAML problems: syntax errors with line and column, duplicates, non-mappings, a key given twice', () => {
  const p = file('syntax.yaml', 'epochs: 2\nseed: [1, 2\n');
  assert.throws(
    () => readConfigFile(p),
    (e: unknown) =>
      e instanceof InputError && /^.*syntax\.yaml:\d+:\d+$/.test(e.source) && /invalid YAML/.test(e.problem),
  );
  assert.throws(
    () => readConfigFile(file('dup.yaml', 'epochs: 2\nepochs: 3\n')),
    /invalid YAML.*[Dd]uplicate|invalid YAML.*unique/,
  );
  assert.throws(
    () => readConfigFile(file('list.yaml', '- a\n- b\n')),
    /must be a mapping of option: value, got a list/,
  );
  refused(
    file('twice.yaml', 'learning_rate: 1\nlearningRate: 2\n'),
    /option "learningRate" is given twice \(also as "learning_rate"\)/,
  );
  assert.throws(
    () => readConfigFile(join(dir, 'missing.yaml')),
    (e: unknown) => e instanceof InputError && /ENOENT/.test(e.problem),
  );
});
