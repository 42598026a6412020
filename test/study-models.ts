/**
 * Tiny real inputs for runner tests: a random teacher and a smaller random student (HF folders with
 * the tok512 llama2.c tokenizer of stories260K), a small question/answer task, and an experiment
 * file over them. The numbers mean nothing; the pipeline they go through is the real one.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeHfModel } from '../src/io/checkpoint.js';
import { randomWeights, tinyConfig } from '../src/model/random.js';

const TOKENIZER = resolve('data/stories260k/tokenizer.bin');

const COLORS = ['red', 'blue', 'green', 'yellow', 'pink', 'brown', 'white', 'black'];
const THINGS = ['zib', 'mop', 'tev', 'lun', 'kad', 'fip', 'rog', 'sul', 'nim', 'bax', 'quo', 'der'];

function rows(n: number, offset: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = THINGS[(i + offset) % THINGS.length];
    const c = COLORS[(i * 3 + offset) % COLORS.length];
    out.push(
      JSON.stringify({
        dataset: 'toy',
        id: `toy-${offset + i}`,
        messages: [
          { role: 'user', content: `What color is the ${t}?` },
          { role: 'assistant', content: `The ${t} is ${c}.` },
        ],
      }),
    );
  }
  return out.join('\n') + '\n';
}

const base = { vocabSize: 512, maxPositionEmbeddings: 128, tieWordEmbeddings: false, headDim: 8 };

function writeModel(folder: string, cfg: ReturnType<typeof tinyConfig>, seed: number): void {
  mkdirSync(folder, { recursive: true });
  writeHfModel(folder, cfg, randomWeights(cfg, seed));
  copyFileSync(TOKENIZER, join(folder, 'tokenizer.bin'));
}

/**
 * A second, larger student for the tiny teacher (hidden 24, 3 heads): the "m" size of a tiny scale
 * study whose "s" size is writeTinyModels' student.
 */
export function writeTinyStudentM(dir: string): string {
  const student = join(dir, 'student-m');
  const cfg = tinyConfig({
    ...base,
    hiddenSize: 24,
    intermediateSize: 48,
    numLayers: 2,
    numHeads: 3,
    numKvHeads: 1,
  });
  writeModel(student, cfg, 13);
  return student;
}

export function writeTinyModels(dir: string): { teacher: string; student: string } {
  const teacher = join(dir, 'teacher');
  const student = join(dir, 'student');
  const tc = tinyConfig({
    ...base,
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 3,
    numHeads: 4,
    numKvHeads: 2,
  });
  const sc = tinyConfig({
    ...base,
    hiddenSize: 16,
    intermediateSize: 32,
    numLayers: 2,
    numHeads: 2,
    numKvHeads: 1,
  });
  writeModel(teacher, tc, 11);
  writeModel(student, sc, 12);
  return { teacher, student };
}

export function writeTinyTask(dir: string): { seeds: string; train: string; test: string } {
  mkdirSync(dir, { recursive: true });
  const files = {
    seeds: join(dir, 'seeds.jsonl'),
    train: join(dir, 'train.jsonl'),
    test: join(dir, 'test.jsonl'),
  };
  writeFileSync(files.seeds, rows(4, 0));
  writeFileSync(files.train, rows(16, 4));
  writeFileSync(files.test, rows(4, 40));
  return files;
}

/**
 * An experiment file over the tiny models: `methods` x `seeds` on one task. `sizes`: a scale study
 * with size "s" (the tiny student, learning rate 0.003) and "m" (writeTinyStudentM, 0.002), both
 * with the one teacher.
 */
export function writeTinyExperiment(
  dir: string,
  opts: { methods?: string[]; seeds?: number[]; metric?: string; sizes?: boolean } = {},
): string {
  writeTinyModels(join(dir, 'models'));
  if (opts.sizes) writeTinyStudentM(join(dir, 'models'));
  writeTinyTask(join(dir, 'task'));
  const file = join(dir, 'exp.yaml');
  const student = opts.sizes
    ? [
        'sizes:',
        '  s: { student: models/student, learning-rate: 0.003 }',
        '  m: { student: models/student-m, learning-rate: 0.002 }',
      ]
    : ['student: models/student'];
  writeFileSync(
    file,
    [
      'name: tiny',
      ...student,
      'teachers:',
      '  big: models/teacher',
      'tasks:',
      '  toy:',
      '    teacher: big',
      '    seeds: task/seeds.jsonl',
      '    train: task/train.jsonl',
      '    test: task/test.jsonl',
      `    metric: ${opts.metric ?? 'answer_loss'}`,
      `methods: [${(opts.methods ?? ['lora', 'transfer']).join(', ')}]`,
      `seeds: [${(opts.seeds ?? [1, 2]).join(', ')}]`,
      'sense:',
      '  num-seeds: 4',
      '  max-length: 64',
      'train:',
      '  epochs: 1',
      '  batch-size: 8',
      '  micro-batch-size: 8',
      '  max-length: 64',
      '  rank: 4',
      '  alpha: 8',
      '  learning-rate: 0.003',
      'eval:',
      '  max-new-tokens: 6',
      '',
    ].join('\n'),
  );
  return file;
}
