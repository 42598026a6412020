import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { InputError } from '../src/errors.js';
import { addSchemaOptions, foldAlias, resolveOptions, toFlags } from '../src/config/cli.js';
import { fieldsOf } from '../src/config/fields.js';
import { COMMAND_SCHEMAS, type CommandName } from '../src/config/schemas.js';

const dir = mkdtempSync(join(tmpdir(), 'nuggets-cli-'));

/** Parses argv with a fresh command for `name`; returns the raw flags, or the commander error text. */
function parse(
  name: CommandName,
  argv: string[],
): { flags?: Record<string, unknown>; error?: string; help?: string } {
  let err = '';
  let out = '';
  const cmd = new Command(name).exitOverride().configureOutput({
    writeErr: (s) => (err += s),
    writeOut: (s) => (out += s),
    getOutHelpWidth: () => 250,
  });
  addSchemaOptions(cmd, name);
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError)
      return e.code === 'commander.helpDisplayed' ? { help: out } : { error: err };
    throw e;
  }
  return { flags: cmd.opts() };
}

test("every command schema is complete (help text on every field) and train's defaults are the paper's", () => {
  for (const [name, schema] of Object.entries(COMMAND_SCHEMAS)) {
    const fields = fieldsOf(schema);
    assert.ok(fields.length > 0, name);
    assert.ok(
      fields.every((f) => f.description.length > 5),
      name,
    );
  }
  const t = resolveOptions('train', { student: 's', data: 'd', out: 'o' });
  assert.deepEqual(
    {
      epochs: t.epochs,
      learningRate: t.learningRate,
      batchSize: t.batchSize,
      rank: t.rank,
      alpha: t.alpha,
      dropout: t.dropout,
      warmupRatio: t.warmupRatio,
      maxLength: t.maxLength,
      scheduler: t.scheduler,
      modules: t.modules,
      chatFormat: t.chatFormat,
      overflow: t.overflow,
    },
    {
      epochs: 3,
      learningRate: 3e-4,
      batchSize: 64,
      rank: 16,
      alpha: 16,
      dropout: 0.05,
      warmupRatio: 0.03,
      maxLength: 2048,
      scheduler: 'linear',
      modules: ['all'],
      chatFormat: 'tulu',
      overflow: 'truncate',
    },
  );
  const s = resolveOptions('sense', { teacher: 't', seeds: 's', out: 'o' });
  assert.equal(s.numSeeds, 32);
  assert.equal(s.dtype, 'f32');
  const x = resolveOptions('extract', { teacher: 't', student: 's', out: 'o' });
  assert.deepEqual(
    [x.layers, x.structure, x.rank, x.alpha, x.init, x.svd],
    ['sensitivity', 'block', 16, 16, 'teacher', 'auto'],
  );
});

test('flags become typed options: kebab-case flags, numbers, comma lists (repeatable), --no- booleans', () => {
  const { flags } = parse('train', [
    '--student',
    'st',
    '--data',
    'd.jsonl',
    '--out',
    'o',
    '--learning-rate',
    '1e-4',
    '--epochs',
    '2',
    '--modules',
    'q_proj,v_proj',
    '--modules',
    'lm_head',
    '--no-progress',
    '--chat-format',
    'template',
  ]);
  const o = resolveOptions('train', flags!);
  assert.equal(o.learningRate, 1e-4);
  assert.equal(o.epochs, 2);
  assert.deepEqual(o.modules, ['q_proj', 'v_proj', 'lm_head']);
  assert.equal(o.progress, false);
  assert.equal(o.chatFormat, 'template');
  assert.equal(o.student, 'st'); // flags are not resolved against anything: relative to the working directory
  assert.deepEqual(
    resolveOptions(
      'eval',
      parse('eval', ['--model', 'm', '--out', 'r.json', '--tasks', 'gsm8k,mmlu', '--shots', '0,8']).flags!,
    ).shots,
    [0, 8],
  );
});

test('bad flag values are refused by commander with the reason', () => {
  assert.match(
    parse('train', ['--epochs', 'three']).error!,
    /--epochs <integer>.*argument 'three' is invalid\. expected an integer/,
  );
  assert.match(parse('train', ['--epochs', '2.5']).error!, /expected an integer/);
  assert.match(parse('train', ['--learning-rate', '']).error!, /expected a number/);
  assert.match(
    parse('train', ['--scheduler', 'cosin']).error!,
    /Allowed choices are linear, cosine, constant/,
  );
  assert.match(
    parse('train', ['--modules', 'q_proj,qproj']).error!,
    /"qproj" is not one of .* \(did you mean "q_proj"\?\)/,
  );
  assert.match(parse('train', ['--lerning-rate', '1']).error!, /unknown option '--lerning-rate'/);
});

test('help lists every option with its default, required ones marked, and --config', () => {
  const { help } = parse('train', ['--help']);
  assert.match(help!, /--learning-rate <number>\s+peak learning rate \(AdamW\) \(default: 0\.0003\)/);
  assert.match(help!, /--student <path>\s+student model .*\(required\)/);
  assert.match(help!, /--modules <names>/);
  assert.match(help!, /--no-progress\s+turn off: show a progress bar/);
  assert.doesNotMatch(help!, /--progress\s/);
  assert.match(help!, /--resume\s+continue from the newest checkpoint/);
  assert.doesNotMatch(help!, /--no-resume/);
  assert.match(help!, /--config <file>\s+YAML file with options \(flags override it\)/);
});

test('defaults < config file < flags', () => {
  const p = join(dir, 'train.yaml');
  writeFileSync(p, 'student: st\ndata: d.jsonl\nout: out\nlearning_rate: 1e-4\nepochs: 5\nprogress: false\n');
  const o = resolveOptions(
    'train',
    parse('train', ['--config', p, '--learning-rate', '2e-4', '--progress']).flags!,
  );
  assert.equal(o.learningRate, 2e-4); // flag over file
  assert.equal(o.epochs, 5); // file over default
  assert.equal(o.progress, true); // --progress overrides the file's false
  assert.equal(o.batchSize, 64); // default
  assert.equal(o.student, join(dir, 'st')); // from the file: relative to the file
  assert.equal(o.data, join(dir, 'd.jsonl'));
});

test('merged options are validated: missing required, ranges and cross-field rules, naming the flag or file', () => {
  assert.throws(
    () => resolveOptions('train', { data: 'd', out: 'o' }),
    (e: unknown) =>
      e instanceof InputError && e.source === 'train' && /--student is required/.test(e.problem),
  );
  assert.throws(
    () =>
      resolveOptions(
        'train',
        parse('train', ['--student', 's', '--data', 'd', '--out', 'o', '--warmup-ratio', '2']).flags!,
      ),
    (e: unknown) => e instanceof InputError && /--warmup-ratio: must be <=1/.test(e.problem),
  );
  assert.throws(
    () =>
      resolveOptions(
        'train',
        parse('train', ['--student', 's', '--data', 'd', '--out', 'o', '--micro-batch-size', '128']).flags!,
      ),
    /--micro-batch-size: must not exceed --batch-size/,
  );
  const p = join(dir, 'bad.yaml');
  writeFileSync(p, 'rank: 0\n');
  assert.throws(
    () =>
      resolveOptions(
        'extract',
        parse('extract', ['--config', p, '--teacher', 't', '--student', 's', '--out', 'o']).flags!,
      ),
    (e: unknown) => e instanceof InputError && e.source === p && /rank: must be >=1/.test(e.problem),
  );
  assert.throws(
    () => resolveOptions('sense', { teacher: 't', seeds: 's', out: 'o', shard: '4' }),
    /--shard: must look like "i\/n"/,
  );
});

test('toFlags writes the non-default options as a command line that parses back to the same options', () => {
  const o = resolveOptions('train', {
    student: 's',
    data: 'd',
    out: 'o',
    epochs: 2,
    modules: ['mlp', 'lm_head'],
    progress: false,
    init: 'i',
  });
  const argv = toFlags('train', o);
  assert.deepEqual(argv, [
    '--student',
    's',
    '--data',
    'd',
    '--out',
    'o',
    '--init',
    'i',
    '--epochs',
    '2',
    '--modules',
    'mlp,lm_head',
    '--no-progress',
  ]);
  assert.deepEqual(resolveOptions('train', parse('train', argv).flags!), o);
});

test('foldAlias: a positional or alias value fills the option, agrees with an equal flag, and refuses a different one', () => {
  const conflict = () => 'two models given';
  const flags: Record<string, unknown> = { out: 'r.json' };
  foldAlias(flags, 'model', undefined, 'eval', conflict);
  assert.deepEqual(flags, { out: 'r.json' });
  foldAlias(flags, 'model', 'm1', 'eval', conflict);
  assert.deepEqual(flags, { out: 'r.json', model: 'm1' });
  foldAlias(flags, 'model', 'm1', 'eval', conflict); // the same value both ways is fine
  assert.deepEqual(flags, { out: 'r.json', model: 'm1' });
  assert.throws(
    () =>
      foldAlias(
        flags,
        'model',
        'm2',
        'eval',
        () => `two models given: m2 and --model ${String(flags.model)}`,
      ),
    (e: unknown) =>
      e instanceof InputError && e.source === 'eval' && e.problem === 'two models given: m2 and --model m1',
  );
  assert.equal(flags.model, 'm1');
  // end to end: the folded value is what resolveOptions validates
  const f = parse('generate', ['--max-new-tokens', '5']).flags!;
  foldAlias(f, 'model', 'stories.bin', 'generate', conflict);
  const o = resolveOptions('generate', f);
  assert.equal(o.model, 'stories.bin');
  assert.equal(o.maxNewTokens, 5);
});
