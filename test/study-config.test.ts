import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from '../src/errors.js';
import { loadExperiment } from '../src/study/config.js';
import { buildPlan, type CellJob, type SenseJob } from '../src/study/plan.js';
import { buildTable, tableMarkdown } from '../src/study/table.js';
import { writeSyntheticRun } from './study-fixture.js';
import { bundledExperiment, runDemo } from '../src/cli/demo.js';

const BASE = `
student: models/student
teachers:
  big: models/teacher
tasks:
  facts:
    teacher: big
    seeds: t/facts/seeds.jsonl
    train: t/facts/train.jsonl
    test: t/facts/test.jsonl
    metric: exact_match
  stories:
    teacher: big
    seeds: t/s/seeds.jsonl
    train: t/s/train.jsonl
    test: t/s/test.jsonl
    metric: answer_loss
methods: [lora, transfer, rowcol, elements, random, pissa, self]
seeds: [1, 2, 3]
train:
  epochs: 2
  rank: 8
  alpha: 16
eval:
  max-new-tokens: 8
`;

function withFile(text: string, fn: (file: string, dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-study-config-'));
  try {
    const file = join(dir, 'exp.yaml');
    writeFileSync(file, text);
    fn(file, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function refused(text: string, pattern: RegExp): void {
  withFile(text, (file) => {
    assert.throws(
      () => loadExperiment(file),
      (e: unknown) => e instanceof InputError && e.source.startsWith(file) && pattern.test(e.problem),
      `expected an InputError matching ${pattern}`,
    );
  });
}

test('grid: 7 methods x 3 seeds x 2 tasks, one sense job per teacher x task shared by the cells', () => {
  withFile(BASE, (file, dir) => {
    const exp = loadExperiment(file);
    assert.equal(exp.student, join(dir, 'models/student'), 'paths resolve against the file');
    const plan = buildPlan(exp, join(dir, 'run'));
    const cells = plan.jobs.filter((j): j is CellJob => j.kind === 'cell');
    const senses = plan.jobs.filter((j): j is SenseJob => j.kind === 'sense');
    assert.equal(cells.length, 42);
    // The teacher for transfer/rowcol/elements/random, the student for self, per task.
    assert.deepEqual(senses.map((s) => s.id).sort(), [
      'sense/big--facts',
      'sense/big--stories',
      'sense/student--facts',
      'sense/student--stories',
    ]);
    assert.equal(plan.jobs.indexOf(senses[0]) < plan.jobs.indexOf(cells[0]), true, 'sense jobs come first');
    const cell = (m: string, s: number, t = 'facts') =>
      cells.find((c) => c.method === m && c.seed === s && c.task === t)!;
    assert.equal(cell('transfer', 1).needs, 'sense/big--facts');
    assert.equal(cell('rowcol', 2).needs, 'sense/big--facts');
    assert.equal(cell('self', 3).needs, 'sense/student--facts');
    assert.equal(cell('lora', 1).needs, null);
    assert.equal(cell('pissa', 1).needs, null);
    // Steps: extract only for methods with a teacher; eval only for the exact-match task.
    assert.deepEqual(
      cell('lora', 1).steps.map((s) => s.name),
      ['train', 'eval'],
    );
    assert.deepEqual(
      cell('transfer', 2, 'stories').steps.map((s) => s.name),
      ['extract', 'train'],
    );
    const ex = cell('rowcol', 2).steps[0].argv;
    const flag = (argv: string[], f: string) => argv[argv.indexOf(f) + 1];
    assert.equal(flag(ex, '--structure'), 'rowcol');
    assert.equal(flag(ex, '--seed'), '2');
    assert.equal(flag(ex, '--rank'), '8', 'extract gets the train rank');
    assert.equal(flag(ex, '--teacher'), join(dir, 'models/teacher'));
    assert.equal(flag(cell('self', 1).steps[0].argv, '--teacher'), 'self');
    const tr = cell('transfer', 3).steps[1].argv;
    assert.equal(flag(tr, '--init'), join(cell('transfer', 3).dir, 'init'));
    assert.equal(flag(tr, '--seed'), '3');
    assert.equal(flag(tr, '--epochs'), '2');
    assert.equal(flag(tr, '--eval-data'), join(dir, 't/facts/test.jsonl'));
    assert.equal(flag(cell('pissa', 1).steps[0].argv, '--lora-init'), 'pissa');
    assert.ok(!cell('lora', 1).steps[0].argv.includes('--init'));
    const ev = cell('lora', 1).steps[1].argv;
    assert.equal(flag(ev, '--tasks'), `super_ni:${join(dir, 't/facts/test.jsonl')}`);
    assert.equal(flag(ev, '--max-new-tokens'), '8');
    // Specs differ between cells and are equal for equal inputs.
    assert.notDeepEqual(cell('lora', 1).spec, cell('lora', 2).spec);
    assert.deepEqual(buildPlan(loadExperiment(file), join(dir, 'run')).jobs, plan.jobs);
  });
});

test('custom methods: a catalogue method with options changed', () => {
  const text = BASE.replace(
    'methods: [lora, transfer, rowcol, elements, random, pissa, self]',
    'methods: [lora, {name: ffn-only, like: transfer, extract: {modules: [mlp]}}]',
  );
  withFile(text, (file, dir) => {
    const plan = buildPlan(loadExperiment(file), join(dir, 'run'));
    const c = plan.jobs.find((j): j is CellJob => j.kind === 'cell' && j.method === 'ffn-only')!;
    const ex = c.steps[0].argv;
    assert.equal(ex[ex.indexOf('--modules') + 1], 'mlp');
    // Everything else is the reference's: block structure and sensitivity layers are extract's defaults.
    assert.ok(!ex.includes('--structure') && !ex.includes('--layers'));
    assert.equal(ex[ex.indexOf('--teacher') + 1], join(dir, 'models/teacher'));
  });
});

test('experiment files: mistakes are refused naming the file and the key', () => {
  refused(
    BASE.replace('seeds: [1, 2, 3]', 'seeds: [1, 2, 3]\nthreds: 2'),
    /unknown key "threds" \(did you mean "threads"\?\)/,
  );
  refused(BASE.replace('rowcol,', 'rowcols,'), /unknown method "rowcols"/);
  refused(
    BASE.replace('    teacher: big\n    seeds: t/s', '    teacher: huge\n    seeds: t/s'),
    /teacher "huge" is not defined/,
  );
  refused(BASE.replace('  epochs: 2', '  epochs: 2\n  seed: 5'), /"seed" is set by the runner/);
  refused(BASE.replace('eval:', 'extract:\n  rank: 4\neval:'), /set rank in the train section/);
  refused(
    BASE.replace('  epochs: 2', '  learnig-rate: 0.001'),
    /unknown option "learnig-rate"; did you mean "learning-rate"/,
  );
  refused(BASE.replace('  epochs: 2', '  epochs: two'), /epochs.*expected an integer/);
  refused(BASE.replace('seeds: [1, 2, 3]', 'seeds: [1, 2, 1]'), /seed 1 is listed twice/);
  refused(BASE.replace('metric: exact_match', 'metric: accuracy'), /tasks\.facts\.metric/);
  refused(
    BASE.replace('methods: [lora', 'methods: [{name: x, like: nope}, lora'),
    /"like: nope" is not a built-in method/,
  );
  refused('student: [1, 2', /invalid YAML/);
});

const SIZES = BASE.replace(
  'student: models/student\nteachers:\n  big: models/teacher\n',
  [
    'teachers:',
    '  big: models/teacher',
    'sizes:',
    '  s: { student: models/student, learning-rate: 0.003 }',
    '  m:',
    '    student: models/student-m',
    '    teachers: { big: models/teacher-m }',
    '    learning-rate: { sweep: sweep.json, task: facts }',
    '',
  ].join('\n'),
);

/** A learning-rate sweep's results.json over sizes s and m (only what the rate choice reads). */
function sweepTable(rows: Array<[string, string, string, number]>): string {
  return JSON.stringify({
    methods: [
      { name: 'lora-1e-3', learningRate: 1e-3 },
      { name: 'lora-3e-3', learningRate: 3e-3 },
      { name: 'lora-1e-2', learningRate: 1e-2 },
      { name: 'transfer' },
    ],
    rows: rows.map(([size, task, method, mean]) => ({
      size,
      task,
      method,
      mean,
      higherIsBetter: task === 'facts',
    })),
  });
}

test('sizes: one grid per student size, its own teachers and learning rate (a number, or the best of a sweep)', () => {
  withFile(SIZES, (file, dir) => {
    // The rate of size m is the best mean of the sweep's rate methods on its task (higher is better
    // for facts; "transfer" sets no rate and is ignored; other sizes and tasks do not count).
    writeFileSync(
      join(dir, 'sweep.json'),
      sweepTable([
        ['m', 'facts', 'lora-1e-3', 0.1],
        ['m', 'facts', 'lora-3e-3', 0.2],
        ['m', 'facts', 'lora-1e-2', 0.15],
        ['m', 'facts', 'transfer', 0.9],
        ['s', 'facts', 'lora-1e-2', 0.5],
        ['m', 'stories', 'lora-1e-2', 0.1],
      ]),
    );
    const exp = loadExperiment(file);
    assert.deepEqual(
      exp.sizes!.map((s) => [s.name, s.student, s.teachers.big, s.learningRate]),
      [
        ['s', join(dir, 'models/student'), join(dir, 'models/teacher'), 0.003],
        ['m', join(dir, 'models/student-m'), join(dir, 'models/teacher-m'), 0.003],
      ],
    );
    assert.deepEqual(exp.sizes![1].learningRateFrom, {
      sweep: join(dir, 'sweep.json'),
      task: 'facts',
      method: 'lora-3e-3',
      value: 0.2,
    });
    const plan = buildPlan(exp, join(dir, 'run'), { s: 100, m: 1000 });
    assert.deepEqual(
      plan.sizes!.map((s) => [s.name, s.params, s.learningRate]),
      [
        ['s', 100, 0.003],
        ['m', 1000, 0.003],
      ],
    );
    const cells = plan.jobs.filter((j): j is CellJob => j.kind === 'cell');
    assert.equal(cells.length, 2 * 42);
    const cell = (size: string, m: string) =>
      cells.find((c) => c.size === size && c.method === m && c.seed === 1 && c.task === 'facts')!;
    assert.equal(cell('m', 'transfer').id, 'sizes/m/cells/facts/transfer/seed-1');
    assert.equal(cell('m', 'transfer').needs, 'sizes/m/sense/big--facts');
    const flag = (argv: string[], f: string) => argv[argv.indexOf(f) + 1];
    assert.equal(flag(cell('m', 'transfer').steps[0].argv, '--teacher'), join(dir, 'models/teacher-m'));
    assert.equal(flag(cell('m', 'transfer').steps[0].argv, '--student'), join(dir, 'models/student-m'));
    assert.equal(flag(cell('s', 'lora').steps[0].argv, '--learning-rate'), '0.003');
    // Reference jobs: teacher and untouched student per size x task; eval only for exact match.
    const refs = plan.jobs.filter((j) => j.kind === 'reference');
    assert.deepEqual(
      refs.map((j) => [j.id, j.steps.map((s) => s.name).join('+')]),
      [
        ['sizes/s/reference/big--facts', 'answer-loss+eval'],
        ['sizes/s/reference/student--facts', 'answer-loss+eval'],
        ['sizes/s/reference/big--stories', 'answer-loss'],
        ['sizes/s/reference/student--stories', 'answer-loss'],
        ['sizes/m/reference/big--facts', 'answer-loss+eval'],
        ['sizes/m/reference/student--facts', 'answer-loss+eval'],
        ['sizes/m/reference/big--stories', 'answer-loss'],
        ['sizes/m/reference/student--stories', 'answer-loss'],
      ],
    );
    const teacherEval = refs[4].steps[1].argv;
    assert.equal(flag(teacherEval, '--model'), join(dir, 'models/teacher-m'));
    assert.ok(!teacherEval.includes('--adapter'));
    // The answer-loss step scores like the trainer's held-out loss: its batch is --micro-batch-size (8 by default).
    assert.equal(refs[0].steps[0].options.batchSize, 8);

    // An existing single-student file keeps its folder layout (no sizes/ level).
    const single = buildPlan(loadExperiment(writeBase(dir)), join(dir, 'run1'));
    assert.ok(single.jobs.every((j) => !j.id.startsWith('sizes/') && j.size === undefined));
    assert.equal(single.sizes, undefined);
  });
});

function writeBase(dir: string): string {
  const f = join(dir, 'base.yaml');
  writeFileSync(f, BASE);
  return f;
}

test('sizes: mistakes are refused naming the file, the size and the key', () => {
  refused(SIZES.replace('sizes:', 'student: models/student\nsizes:'), /either "student".*or "sizes"/);
  refused(
    SIZES.replace('learning-rate: 0.003 }', 'learnig-rate: 0.003 }'),
    /sizes\.s: unknown key "learnig-rate" \(did you mean "learning-rate"\?\)/,
  );
  refused(
    SIZES.replace('teachers:\n  big: models/teacher\nsizes', 'sizes').replace(
      '{ sweep: sweep.json, task: facts }',
      '0.002',
    ),
    /teacher "big" is not defined under "teachers" of size "s"/,
  );
  // The sweep's results are missing, or hold nothing for this size and task.
  refused(SIZES, /sweep\.json does not exist: run the learning-rate sweep first/);
  withFile(SIZES, (file, dir) => {
    writeFileSync(join(dir, 'sweep.json'), sweepTable([['s', 'facts', 'lora-1e-3', 0.1]]));
    assert.throws(
      () => loadExperiment(file),
      (e: unknown) => e instanceof InputError && /no results for size "m" on task "facts"/.test(e.problem),
    );
  });
});

test('sizes: a size may run a subset of the tasks (those its teacher knows more of); the plan and table leave the rest out', () => {
  const text = SIZES.replace(
    '    learning-rate: { sweep: sweep.json, task: facts }',
    '    learning-rate: 0.001\n    tasks: [facts]',
  ).replace('    teachers: { big: models/teacher-m }', '    teachers: { big: models/teacher-m }');
  withFile(text, (file, dir) => {
    const exp = loadExperiment(file);
    assert.deepEqual(
      exp.sizes!.map((s) => s.tasks),
      [undefined, ['facts']],
    );
    const plan = buildPlan(exp, join(dir, 'run'), { s: 100, m: 1000 });
    const ids = plan.jobs.map((j) => j.id);
    assert.equal(ids.filter((id) => id.startsWith('sizes/m/cells/facts/')).length, 21);
    assert.equal(ids.filter((id) => id.startsWith('sizes/m/') && id.includes('stories')).length, 0);
    assert.equal(ids.filter((id) => id.startsWith('sizes/s/cells/stories/')).length, 21);
    assert.deepEqual(
      plan.sizes!.map((s) => s.tasks),
      [undefined, ['facts']],
    );
    const md = tableMarkdown(buildTable(plan));
    const sSection = md.slice(md.indexOf('### size s:'), md.indexOf('### size m:'));
    const mSection = md.slice(md.indexOf('### size m:'), md.indexOf('### Difference'));
    assert.ok(md.includes('### size s:') && md.includes('### size m:'), md);
    assert.match(sSection, /\*\*stories\*\*/);
    assert.match(mSection, /\*\*facts\*\*/);
    assert.doesNotMatch(mSection, /\*\*stories\*\*/);
    const table = buildTable(plan);
    assert.ok(!table.rows.some((r) => r.size === 'm' && r.task === 'stories'));
    assert.ok(!table.scaling!.some((p) => p.size === 'm' && p.task === 'stories'));
    assert.equal(table.scaling!.filter((p) => p.size === 's' && p.task === 'stories').length, 6);
    assert.equal(table.rows.filter((r) => r.size === 's' && r.task === 'stories').length, 7);
  });
  // the size's teacher only has to exist for the tasks it runs; an unknown task is refused
  refused(
    text.replace('tasks: [facts]', 'tasks: [fact]'),
    /size "m": task "fact" is not defined under "tasks" \(defined: facts, stories\)/,
  );
  refused(text.replace('tasks: [facts]', 'tasks: [facts, facts]'), /size "m": a task is listed twice/);
});

test('table: mean, std, paired comparison; missing cells lower n and are listed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-study-table-'));
  try {
    const plan = writeSyntheticRun(join(dir, 'run'));
    const full = buildTable(plan);
    const row = (t: ReturnType<typeof buildTable>, task: string, m: string) =>
      t.rows.find((r) => r.task === task && r.method === m)!;
    const tr = row(full, 'facts', 'transfer');
    const lo = row(full, 'facts', 'lora');
    const vals = Object.values(tr.values);
    assert.equal(tr.n, 3);
    assert.ok(Math.abs(tr.mean! - vals.reduce((a, b) => a + b, 0) / 3) < 1e-12);
    const diffs = ['1', '2', '3'].map((s) => tr.values[s] - lo.values[s]);
    assert.ok(Math.abs(tr.vsBaseline!.meanDiff! - diffs.reduce((a, b) => a + b, 0) / 3) < 1e-12);
    assert.equal(lo.vsBaseline, null, 'the baseline is not compared with itself');
    // Remove one transfer cell: n drops, the pairing uses the 2 remaining seeds, the cell is listed.
    const gone = plan.jobs.find(
      (j): j is CellJob => j.kind === 'cell' && j.task === 'facts' && j.method === 'transfer' && j.seed === 2,
    )!;
    rmSync(join(gone.dir, 'result.json'));
    const part = buildTable(plan);
    assert.equal(row(part, 'facts', 'transfer').n, 2);
    assert.deepEqual(row(part, 'facts', 'transfer').vsBaseline!.seeds, [1, 3]);
    assert.deepEqual(part.missing, [gone.id]);
    const md = tableMarkdown(part);
    assert.match(md, /\| transfer \| [0-9.]+ \| [0-9.]+ \| 2 \|/);
    assert.match(md, /Missing cells \(1\): cells\/facts\/transfer\/seed-2/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the committed experiment files load: the study has every method, 3 seeds, both tasks; the demo is a subset', () => {
  const study = loadExperiment(bundledExperiment('study.yaml'));
  assert.deepEqual(
    study.methods.map((m) => m.name),
    ['lora', 'transfer', 'rowcol', 'elements', 'random', 'pissa', 'self'],
  );
  assert.ok(study.seeds.length >= 3);
  assert.deepEqual(
    study.tasks.map((t) => [t.name, t.metric]),
    [
      ['stories', 'answer_loss'],
      ['facts', 'exact_match'],
    ],
  );
  const plan = buildPlan(study, join(tmpdir(), 'unused-study-run'));
  assert.equal(plan.jobs.filter((j) => j.kind === 'cell').length, 42);
  const demo = loadExperiment(bundledExperiment('demo.yaml'));
  assert.ok(demo.methods.every((m) => study.methods.some((s) => s.name === m.name)));
  assert.deepEqual(demo.student, study.student);
  for (const f of ['study-lr3e-4.yaml', 'lr-sweep.yaml'])
    assert.ok(loadExperiment(bundledExperiment(f)).tasks.length === 2, f);
});

test("the committed scale study: the issue's methods, 3 seeds, sizes s, m and l, each size's rate from its sweep", () => {
  const sweep = loadExperiment(bundledExperiment('scale-lr-sweep.yaml'));
  assert.deepEqual(
    sweep.sizes!.map((s) => [s.name, s.student.replace(/^.*\//, ''), s.learningRate]),
    [
      ['s', 'student-tiny', undefined],
      ['m', 'student-m', undefined],
      ['l', 'student-l', undefined],
    ],
  );
  assert.deepEqual(
    sweep.methods.map((m) => m.train.learningRate),
    [3e-4, 1e-3, 3e-3, 1e-2],
  );
  // scale.yaml reads the rates of sizes m and l from the sweep's committed results; until they exist, loading it
  // says which file is missing. Here it reads a stand-in for that file.
  const file = bundledExperiment('scale.yaml');
  const text = readFileSync(file, 'utf8');
  assert.match(text, /learning-rate: \{ sweep: \.\.\/results\/scale-lr-sweep\.json, task: facts \}/);
  if (!existsSync(join(dirname(file), '../results/scale-lr-sweep.json')))
    assert.throws(
      () => loadExperiment(file),
      (e: unknown) =>
        e instanceof InputError && /results\/scale-lr-sweep\.json does not exist/.test(e.problem),
    );
  withFile('', (_, dir) => {
    const standIn = join(dir, 'sweep.json');
    writeFileSync(
      standIn,
      sweepTable([
        ['m', 'facts', 'lora-1e-3', 0.3],
        ['m', 'facts', 'lora-1e-2', 0.2],
        ['l', 'facts', 'lora-3e-3', 0.25],
        ['l', 'facts', 'lora-1e-2', 0.35],
      ]),
    );
    // (elsewhere, so its other paths point nowhere: loading an experiment does not read the models)
    const copy = join(dir, 'experiments', 'scale.yaml');
    mkdirSync(dirname(copy));
    writeFileSync(copy, text.replaceAll('../results/scale-lr-sweep.json', standIn));
    const exp = loadExperiment(copy);
    assert.deepEqual(
      exp.methods.map((m) => m.name),
      ['lora', 'transfer', 'random', 'pissa', 'kd-logits', 'kd-sequence', 'transfer+kd'],
    );
    assert.deepEqual(exp.seeds, [1, 2, 3]);
    assert.deepEqual(
      exp.sizes!.map((s) => [
        s.name,
        s.student.replace(/^.*\//, ''),
        s.teachers.facts.replace(/^.*\//, ''),
        s.learningRate,
      ]),
      [
        ['s', 'student-tiny', 'teacher-facts', 3e-3],
        ['m', 'student-m', 'teacher-m', 1e-3],
        ['l', 'student-l', 'teacher-l', 1e-2],
      ],
    );
    // 7 methods x 3 seeds x both tasks at size s, facts only at sizes m and l
    assert.deepEqual(
      exp.sizes!.map((s) => s.tasks),
      [undefined, ['facts'], ['facts']],
    );
    const plan = buildPlan(exp, join(dir, 'run'));
    assert.equal(plan.jobs.filter((j) => j.kind === 'cell').length, 42 + 21 + 21);
  });
});

test('the demo refuses to start without the bundled models, naming the missing path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-demo-'));
  try {
    const file = join(dir, 'exp.yaml');
    writeFileSync(file, BASE);
    await assert.rejects(
      runDemo({ out: join(dir, 'out'), jobs: 1, experiment: file }),
      (e: unknown) =>
        e instanceof InputError &&
        e.source === join(dir, 'models/student') &&
        /scripts\/build-zoo\.sh/.test(e.problem),
    );
    assert.ok(!existsSync(join(dir, 'out')), 'nothing was started');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
