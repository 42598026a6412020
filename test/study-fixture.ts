/**
 * A synthetic run folder in the exact layout `nuggets run` writes (plan.json, sense summaries,
 * extract manifests, trainer logs, cell results, the table), with made-up numbers: for the report
 * tests, which must not depend on hours of training.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../src/io/atomic.js';
import type { Experiment } from '../src/study/config.js';
import { resolveMethod } from '../src/study/methods.js';
import { buildPlan, PLAN_FILE, RESULT_FILE, type CellJob, type Plan } from '../src/study/plan.js';
import { buildTable, writeTable } from '../src/study/table.js';

const KINDS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
const T = { layers: 6, d: 96, f: 256, kv: 48, V: 512 };
const S = { layers: 3, d: 48, f: 128, kv: 24 };

function shapeOf(kind: string, m: typeof T | typeof S): [number, number] {
  switch (kind) {
    case 'q_proj':
    case 'o_proj':
      return [m.d, m.d];
    case 'k_proj':
    case 'v_proj':
      return [m.kv, m.d];
    case 'gate_proj':
    case 'up_proj':
      return [m.f, m.d];
    default:
      return [m.d, m.f];
  }
}

/** Two student sizes of a synthetic scale study, and their parameter counts. */
export const SYNTHETIC_SIZES = { s: 120_000, m: 1_200_000 } as const;

export function syntheticExperiment(
  dir: string,
  methods = ['lora', 'transfer', 'rowcol', 'self', 'pissa'],
  seeds = [1, 2, 3],
  sizes = false,
): Experiment {
  return {
    ...(sizes
      ? {
          sizes: Object.keys(SYNTHETIC_SIZES).map((name, i) => ({
            name,
            student: `/models/student-${name}`,
            teachers: { big: `/models/teacher-${name}` },
            learningRate: 3e-3 / (i + 1),
          })),
        }
      : {}),
    file: join(dir, 'synthetic.yaml'),
    name: 'synthetic',
    student: '/models/student',
    teachers: { big: '/models/teacher' },
    tasks: [
      {
        name: 'facts',
        teacher: 'big',
        seeds: '/t/facts/seeds.jsonl',
        train: '/t/facts/train.jsonl',
        test: '/t/facts/test.jsonl',
        metric: 'exact_match',
      },
      {
        name: 'stories',
        teacher: 'big',
        seeds: '/t/s/seeds.jsonl',
        train: '/t/s/train.jsonl',
        test: '/t/s/test.jsonl',
        metric: 'answer_loss',
      },
    ],
    methods: methods.map((m) => resolveMethod(m, 'synthetic')),
    seeds,
    threads: 1,
    sense: {},
    extract: {},
    train: {},
    eval: {},
    distillData: {},
  };
}

/**
 * Writes the synthetic run into `dir` and returns its plan; `sizes`: a scale study over
 * SYNTHETIC_SIZES (method differences from LoRA grow with the size).
 */
export function writeSyntheticRun(dir: string, opts: { sizes?: boolean } = {}): Plan {
  const plan = buildPlan(
    syntheticExperiment(dir, undefined, undefined, opts.sizes ?? false),
    dir,
    opts.sizes ? { ...SYNTHETIC_SIZES } : {},
  );
  mkdirSync(dir, { recursive: true });
  writeJsonAtomic(join(dir, PLAN_FILE), plan);
  for (const job of plan.jobs) {
    if (job.kind === 'sense') {
      const layers = job.teacher === 'student' ? S.layers : T.layers;
      const m = job.teacher === 'student' ? S : T;
      const tensors: Record<string, { shape: number[]; sum: number }> = {};
      const layerSums = new Array<number>(layers).fill(0);
      for (let l = 0; l < layers; l++) {
        for (const k of KINDS) {
          const shape = shapeOf(k, m);
          const sum = shape[0] * shape[1] * (1 + ((l * 7 + k.length) % 5)) * 1e-3;
          tensors[
            `model.layers.${l}.${k.endsWith('proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(k) ? 'mlp' : 'self_attn'}.${k}.weight`
          ] = { shape, sum };
          layerSums[l] += sum;
        }
        for (const n of ['input_layernorm', 'post_attention_layernorm']) {
          tensors[`model.layers.${l}.${n}.weight`] = { shape: [m.d], sum: m.d * 0.01 * (l + 1) };
          layerSums[l] += m.d * 0.01 * (l + 1);
        }
      }
      tensors['model.embed_tokens.weight'] = { shape: [T.V, m.d], sum: 3 };
      tensors['model.norm.weight'] = { shape: [m.d], sum: 0.5 };
      mkdirSync(job.dir, { recursive: true });
      writeJsonAtomic(job.output.replace(/\.safetensors$/, '.summary.json'), {
        format: 'nuggets-sensitivity',
        tensors,
        layers: layerSums,
      });
      writeFileSync(job.output, 'not a real safetensors file');
      continue;
    }
    if (job.kind === 'reference') {
      const teacher = job.role === 'teacher';
      const metrics: Record<string, number> = {
        answer_loss: teacher ? 2.25 : 2.75,
        ...(job.metric === 'answer_loss' ? {} : { [job.metric]: teacher ? 0.0625 : 0 }),
      };
      writeJsonAtomic(join(job.dir, RESULT_FILE), {
        id: job.id,
        task: job.task,
        role: job.role,
        model: job.model,
        metric: job.metric,
        higherIsBetter: job.higherIsBetter,
        value: metrics[job.metric],
        metrics,
        seconds: {},
        spec: job.spec,
        finished: '2024-01-01T00:00:00Z',
      });
      continue;
    }
    writeCell(job);
  }
  writeTable(dir, buildTable(plan));
  return plan;
}

function writeCell(c: CellJob): void {
  mkdirSync(c.trainDir, { recursive: true });
  const methodIdx = c.method.length;
  if (c.initDir) {
    const teacher = c.needs?.includes('student') ? S : T;
    const teacherLayers = teacher === S ? [0, 1, 2] : [1, 3, 4];
    // Only block windows have an offset (rowcol / elements / random keep scattered entries).
    const block = c.method !== 'rowcol';
    const matrices = [];
    for (let l = 0; l < S.layers; l++) {
      for (const k of KINDS) {
        const [n, m] = shapeOf(k, S);
        const [tn, tm] = shapeOf(k, teacher);
        matrices.push({
          module: `model.layers.${l}.${k}`,
          kind: k,
          studentLayer: l,
          teacherLayer: teacherLayers[l],
          teacherTensor: `model.layers.${teacherLayers[l]}.${k}.weight`,
          shape: [n, m],
          teacherShape: [tn, tm],
          transposed: false,
          structure: block ? 'block' : c.method,
          offset: block ? [(l * 5 + k.length) % (tn - n + 1), (l * 3) % (tm - m + 1)] : null,
          share: 0.4 + 0.05 * l,
          singularValues: [3, 2, 1],
          energyKept: 0.9,
          deltaNorm: 1,
        });
      }
    }
    matrices.push({
      module: 'model.embed_tokens',
      kind: 'embed_tokens',
      studentLayer: null,
      teacherLayer: null,
      teacherTensor: 'model.embed_tokens.weight',
      shape: [S.d, T.V],
      teacherShape: [teacher.d, T.V],
      transposed: true,
      structure: block ? 'block' : c.method,
      offset: block ? [teacher.d - S.d, 0] : null,
      share: 0.6,
      singularValues: [1],
      energyKept: 0.5,
      deltaNorm: 1,
    });
    writeJsonAtomic(join(c.initDir, 'manifest.json'), {
      format: 'nuggets-transfer-manifest',
      version: 1,
      created: '2024-01-01T00:00:00Z',
      init: 'teacher',
      lora: { r: 16, alpha: 16, scale: 1, dropout: 0.05 },
      subtract: true,
      untieStudentHead: false,
      layers: { method: 'sensitivity', teacherLayers, scores: [], seed: null },
      options: {},
      matrices,
      inputs: {},
      notes: [],
    });
  }
  const lines: string[] = [];
  for (let step = 1; step <= 12; step++) {
    lines.push(
      JSON.stringify({
        current_steps: step,
        total_steps: 12,
        loss: 3 / (1 + 0.1 * step * (1 + methodIdx / 10)) + 0.01 * c.seed,
        learning_rate: 3e-4,
        epoch: step / 4,
        percentage: (step / 12) * 100,
        elapsed_time: '0:00:01',
        remaining_time: '0:00:01',
      }),
    );
    if (step % 4 === 0) {
      lines.push(
        JSON.stringify({
          current_steps: step,
          total_steps: 12,
          loss: null,
          learning_rate: 3e-4,
          epoch: step / 4,
          percentage: (step / 12) * 100,
          elapsed_time: '0:00:01',
          remaining_time: '0:00:01',
          eval_loss: 2.5 - step * 0.05 - methodIdx * 0.01 + 0.02 * c.seed,
        }),
      );
    }
  }
  writeFileSync(join(c.trainDir, 'trainer_log.jsonl'), lines.join('\n') + '\n');
  // Made-up values with seed-to-seed noise that differs by method, so paired t values are finite.
  const noise = (((c.seed * 31 + methodIdx * 17) % 11) - 5) / 500;
  const grow = c.size === 'm' ? 2 : 1;
  const value =
    c.metric === 'answer_loss'
      ? 1.9 - methodIdx * 0.01 * grow + 0.02 * c.seed + noise
      : 0.2 + methodIdx * 0.02 * grow + 0.01 * ((c.seed * 7) % 3) + noise;
  writeJsonAtomic(join(c.dir, RESULT_FILE), {
    id: c.id,
    task: c.task,
    method: c.method,
    seed: c.seed,
    metric: c.metric,
    higherIsBetter: c.higherIsBetter,
    value,
    metrics: { [c.metric]: value },
    seconds: {},
    spec: c.spec,
    finished: '2024-01-01T00:00:00Z',
  });
}
