/**
 * Conventions every `nuggets` command follows: `-o/--out` wherever something is written, parser
 * mistakes as one line with a hint and exit status 2 (like the commands' own input checks), one
 * "nuggets:" prefix, one default seed, `--version` from package.json, and a help page that opens
 * with a one-line synopsis and ends with an example. Also: the study runner's commands.sh line and
 * its library call are the same options.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { buildProgram } from '../src/cli/main.js';
import { resolveOptions } from '../src/config/cli.js';
import { fieldsOf } from '../src/config/fields.js';
import { parseOptions } from '../src/config/parse.js';
import { COMMAND_SCHEMAS, DEFAULT_SEED, type CommandName } from '../src/config/schemas.js';
import { PRETRAIN_DEFAULTS } from '../src/train/pretrain/options.js';
import { stepPlan } from '../src/study/plan.js';
import { cliBatch } from './helpers/cli.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const tmp = mkdtempSync(join(tmpdir(), 'nuggets-conv-'));

/** The command at `path` ("sense merge") of a fresh program. */
function find(program: Command, path: string): Command {
  let cmd = program;
  for (const name of path.split(' ')) {
    const next = cmd.commands.find((c) => c.name() === name);
    assert.ok(next, `no command ${path}`);
    cmd = next;
  }
  return cmd;
}

/** Parses a command line with the command's action replaced; returns the flags commander produced. */
async function parsedFlags(path: string, args: string[]): Promise<Record<string, unknown>> {
  const program = buildProgram();
  const cmd = find(program, path);
  let flags: Record<string, unknown> = {};
  cmd.action((...a: unknown[]) => {
    flags = (a[a.length - 1] as Command).opts();
  });
  await program.parseAsync(['node', 'nuggets', ...path.split(' '), ...args]);
  return flags;
}

/** Every command that writes a file or folder. */
const WRITERS = [
  'pretrain',
  'convert',
  'eval',
  'sense',
  'sense merge',
  'extract',
  'train',
  'merge',
  'run',
  'report',
  'demo',
  'export gguf',
  'export gguf-lora',
  'random-model',
];

test('-o/--out on every command that writes, and -o fills the same option as --out', async () => {
  const program = buildProgram();
  for (const path of WRITERS) {
    const cmd = find(program, path);
    assert.ok(
      cmd.options.some((o) => o.short === '-o' && o.long === '--out'),
      `${path}: has -o, --out`,
    );
  }
  assert.equal((await parsedFlags('train', ['s', '--data', 'd', '-o', 'x'])).out, 'x');
  assert.equal((await parsedFlags('pretrain', ['--data', 'd', '-o', 'x'])).out, 'x');
  assert.equal((await parsedFlags('merge', ['--student', 's', '--adapter', 'a', '-o', 'x'])).out, 'x');
  // older spellings stay: eval's --output
  assert.equal((await parsedFlags('eval', ['m', '--tasks', 'gsm8k', '--output', 'r.json'])).output, 'r.json');
  assert.equal((await parsedFlags('eval', ['m', '--tasks', 'gsm8k', '-o', 'r.json'])).out, 'r.json');
});

test('parser mistakes: one line naming the problem and the help to read, exit 2, no help dump', () => {
  const runs: [string[], RegExp][] = [
    [
      ['train', '--no-such-flag'],
      /^nuggets: error: unknown option '--no-such-flag' \(see 'nuggets train --help'\)$/,
    ],
    [['trian'], /^nuggets: error: unknown command 'trian'; did you mean train\? \(see 'nuggets --help'\)$/],
    [
      ['train', 's', '--rank', 'two'],
      /^nuggets: error: option '--rank <integer>' argument 'two' is invalid\. expected an integer\. \(see 'nuggets train --help'\)$/,
    ],
    [
      ['eval', 'm', '--tasks'],
      /^nuggets: error: option '--tasks <texts>' argument missing \(see 'nuggets eval --help'\)$/,
    ],
    [
      ['extract', '--svd', 'fast'],
      /^nuggets: error: option '--svd <choice>' argument 'fast' is invalid\. Allowed choices are auto, exact, randomized\. \(see 'nuggets extract --help'\)$/,
    ],
    [
      ['convert', 'x.bin'],
      /^nuggets: error: required option '-o, --out <folder>' not specified \(see 'nuggets convert --help'\)$/,
    ],
    [['report'], /^nuggets: error: missing required argument 'run-dir' \(see 'nuggets report --help'\)$/],
    [
      ['run', 'x.yaml', '--jobs', '0'],
      /^nuggets: error: option '-j, --jobs <n>' argument '0' is invalid\. expected a positive integer\. \(see 'nuggets run --help'\)$/,
    ],
    [
      ['info', 'extra'],
      /^nuggets: error: too many arguments for 'info'\. Expected 0 arguments but got 1\. \(see 'nuggets info --help'\)$/,
    ],
  ];
  const results = cliBatch(runs.map(([argv]) => argv));
  results.forEach((r, i) => {
    const [argv, want] = runs[i];
    const what = argv.join(' ');
    assert.equal(r.code, 2, `${what}: exit 2`);
    assert.equal(r.out, '', `${what}: nothing on stdout`);
    const lines = r.err.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `${what}: one line, got:\n${r.err}`);
    assert.match(lines[0], want, what);
  });
});

test('input errors carry one "nuggets:" prefix (schema checks and the commands\' own checks alike)', () => {
  const text = join(tmp, 'corpus.txt');
  writeFileSync(text, 'one document\n\nanother one\n');
  const [train, pretrain] = cliBatch([
    ['train'],
    [
      'pretrain',
      '--data',
      text,
      '--tokenizer',
      join(ROOT, 'zoo', 'stories260k', 'tokenizer.json'),
      '--hidden-size',
      '40',
      '--num-layers',
      '1',
      '--num-heads',
      '5',
      '--num-kv-heads',
      '2',
      '--intermediate-size',
      '8',
      '-o',
      join(tmp, 'never'),
    ],
  ]);
  assert.equal(train.code, 2);
  assert.match(train.err, /^nuggets: train: --student is required \(/);
  assert.equal(pretrain.code, 2);
  assert.equal(pretrain.err, 'nuggets: pretrain: --num-heads 5 is not a multiple of --num-kv-heads 2\n');
  for (const r of [train, pretrain]) assert.doesNotMatch(r.err, /nuggets:? nuggets/);
});

test('one default seed: every command with a seed defaults to DEFAULT_SEED', () => {
  const required: Record<string, Record<string, unknown>> = {
    extract: { teacher: 't', student: 's', out: 'o' },
    train: { student: 's', data: 'd', out: 'o' },
    'distill-data': { teacher: 't', data: 'd', out: 'o' },
    eval: { model: 'm', tasks: ['gsm8k'], out: 'o' },
    generate: { model: 'm' },
    pretrain: { data: 'd', out: 'o' },
  };
  const withSeed = Object.entries(COMMAND_SCHEMAS)
    .filter(([, s]) => fieldsOf(s).some((f) => f.key === 'seed'))
    .map(([name]) => name)
    .sort();
  assert.deepEqual(withSeed, Object.keys(required).sort());
  for (const [name, given] of Object.entries(required)) {
    const o = parseOptions(name as CommandName, given as never) as { seed: number };
    assert.equal(o.seed, DEFAULT_SEED, name);
  }
  assert.equal(PRETRAIN_DEFAULTS.seed, DEFAULT_SEED);
});

test("--version prints the package version; every command's help opens with a synopsis and ends with an example", () => {
  const program = buildProgram();
  const paths = [
    ...program.commands.filter((c) => !(c as unknown as { _hidden: boolean })._hidden).map((c) => c.name()),
    'sense merge',
    'export gguf',
    'export gguf-lora',
  ];
  const results = cliBatch([['--version'], ['-V'], ...paths.map((p) => [...p.split(' '), '--help'])]);
  for (const r of results.slice(0, 2)) {
    assert.equal(r.code, 0);
    assert.equal(r.out, `${VERSION}\n`);
  }
  results.slice(2).forEach((r, i) => {
    const path = paths[i];
    assert.equal(r.code, 0, path);
    const lines = r.out.trimEnd().split('\n');
    assert.match(lines[0], new RegExp(`^Usage: nuggets ${path} \\S`), `${path}: synopsis`);
    assert.equal(lines[1], '', `${path}: the synopsis is one line`);
    assert.equal(lines[lines.length - 2], 'Example:', `${path}: example`);
    assert.match(lines[lines.length - 1], new RegExp(`^  nuggets ${path} \\S`), `${path}: example`);
  });
});

test("the study runner's commands.sh line and its library call are the same options", async () => {
  const options = {
    student: '/m/student',
    data: '/t/train.jsonl',
    out: '/r/train',
    init: '/r/init',
    evalData: '/t/test.jsonl',
    rank: 8,
    learningRate: 1e-3,
    modules: ['attention', 'mlp'] as Array<'attention' | 'mlp'>,
    seed: 3,
    progress: false,
  };
  const step = stepPlan('train', options);
  assert.equal(step.argv[0], 'train');
  assert.deepEqual(step.options, options);
  const fromLine = resolveOptions('train', await parsedFlags('train', step.argv.slice(1)));
  assert.deepEqual(fromLine, parseOptions('train', options));
  assert.equal(fromLine.seed, 3);
  assert.equal(fromLine.progress, false);
});

test('train and merge record the command line as typed (what main() was given, not process.argv)', () => {
  const data = join(tmp, 'four.jsonl');
  writeFileSync(
    data,
    readFileSync(join(ROOT, 'tasks', 'facts', 'train.jsonl'), 'utf8')
      .split('\n')
      .slice(0, 4)
      .join('\n') + '\n',
  );
  const student = join(ROOT, 'zoo', 'student-tiny');
  const trainArgs = [
    'train',
    student,
    '--data',
    data,
    '-o',
    join(tmp, 'tr'),
    '--epochs',
    '1',
    '--batch-size',
    '2',
    '--micro-batch-size',
    '2',
    '--rank',
    '2',
    '--modules',
    'q_proj',
    '--no-progress',
  ];
  const mergeArgs = ['merge', '--student', student, '--adapter', join(tmp, 'tr'), '-o', join(tmp, 'merged')];
  const [t, m] = cliBatch([trainArgs, mergeArgs]);
  assert.equal(t.code, 0, t.err);
  assert.equal(m.code, 0, m.err);
  const record = JSON.parse(readFileSync(join(tmp, 'tr', 'training.json'), 'utf8')) as {
    commandLine: { argv: string[] };
  };
  assert.deepEqual(record.commandLine.argv, trainArgs);
  const card = readFileSync(join(tmp, 'merged', 'README.md'), 'utf8');
  assert.ok(card.includes(`nuggets ${mergeArgs.join(' ')}`), 'merge command line in the model card');
});
