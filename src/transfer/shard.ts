/**
 * Sharding `nuggets sense` over machines (docs/sharding.md): shard i of n processes a contiguous
 * slice of the seeds, and `sense merge` sums the shard files. S is a sum over seeds (docs/method.md
 * step 1), so the merged file equals the unsharded one up to float32 rounding of the order of the
 * additions. The shard index comes from the command line (`--shard i/n`) or from the scheduler's
 * environment: a Kubernetes Indexed Job's JOB_COMPLETION_INDEX or a Slurm job array's
 * SLURM_ARRAY_TASK_ID. There is no cluster code here: the scheduler runs the processes.
 */
import { kernels } from '../engine/backend.js';
import { InputError } from '../errors.js';
import { openSafetensors, writeSafetensorsLazy, type SafetensorsReader } from '../io/safetensors.js';
import { writeJsonAtomic } from '../io/atomic.js';
import {
  SENS_FORMAT,
  SENS_VERSION,
  SUMMARY_METADATA_KEY,
  summaryPathFor,
  type SensSummary,
} from './sense/summary.js';
import type { SeedLoss } from './sense/types.js';
import { F16Fit, safetensorsDtype, type SensDtype } from './sense/writer.js';

export interface ShardSpec {
  index: number;
  count: number;
}

/** Parses "i/n" (0 <= i < n). */
export function parseShard(spec: string, source = '--shard'): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(spec);
  if (!m) throw new InputError(source, `"${spec}" is not "i/n" (e.g. "0/4")`);
  const index = Number(m[1]),
    count = Number(m[2]);
  if (count < 1) throw new InputError(source, `shard count must be at least 1, got ${count}`);
  if (index >= count)
    throw new InputError(
      source,
      `shard index ${index} must be below the shard count ${count} (indices are 0-based)`,
    );
  return { index, count };
}

function envInt(env: NodeJS.ProcessEnv, key: string): number | null {
  const v = env[key];
  if (v === undefined || v.trim() === '') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new InputError(key, `environment variable is "${v}", not a non-negative integer`);
  return n;
}

/**
 * The shard of this process from the scheduler's environment.
 * - Kubernetes Indexed Job: index = JOB_COMPLETION_INDEX (0-based); the count is the Job's
 *   `completions`, which Kubernetes does not export: pass it as `count`.
 * - Slurm job array: index = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP, so
 *   `--array=1-8` works as well as `--array=0-7`; count = SLURM_ARRAY_TASK_COUNT unless given.
 */
export function shardFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  count?: number,
): ShardSpec & { from: string } {
  const k8s = envInt(env, 'JOB_COMPLETION_INDEX');
  const slurm = envInt(env, 'SLURM_ARRAY_TASK_ID');
  if (k8s !== null && slurm !== null) {
    throw new InputError(
      '--shard-from-env',
      'both JOB_COMPLETION_INDEX (Kubernetes) and SLURM_ARRAY_TASK_ID (Slurm) are set; use --shard i/n',
    );
  }
  let index: number, n: number | null, from: string;
  if (k8s !== null) {
    index = k8s;
    n = count ?? null;
    from = 'JOB_COMPLETION_INDEX';
    if (n === null)
      throw new InputError(
        '--shard-from-env',
        'a Kubernetes Indexed Job does not export its completions: pass --shard-count <completions>',
      );
  } else if (slurm !== null) {
    const min = envInt(env, 'SLURM_ARRAY_TASK_MIN') ?? 0;
    const step = envInt(env, 'SLURM_ARRAY_TASK_STEP') ?? 1;
    if (slurm < min || step < 1 || (slurm - min) % step !== 0) {
      throw new InputError(
        'SLURM_ARRAY_TASK_ID',
        `${slurm} is not on the array's range (min ${min}, step ${step})`,
      );
    }
    index = (slurm - min) / step;
    n = count ?? envInt(env, 'SLURM_ARRAY_TASK_COUNT');
    from = 'SLURM_ARRAY_TASK_ID';
    if (n === null)
      throw new InputError('--shard-from-env', 'SLURM_ARRAY_TASK_COUNT is not set: pass --shard-count <n>');
  } else {
    throw new InputError(
      '--shard-from-env',
      'neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID (Slurm job array) is set',
    );
  }
  if (!(n >= 1)) throw new InputError('--shard-count', `must be at least 1, got ${n}`);
  if (index >= n) throw new InputError(from, `shard index ${index} is not below the shard count ${n}`);
  return { index, count: n, from };
}

/** Seeds [start, end) of shard s of `total` seeds: contiguous slices whose sizes differ by at most one. */
export function shardRange(total: number, s: ShardSpec): { start: number; end: number } {
  return {
    start: Math.floor((s.index * total) / s.count),
    end: Math.floor(((s.index + 1) * total) / s.count),
  };
}

/** `{i}` and `{n}` in an output path become the shard index and count. */
export function shardPath(out: string, s: ShardSpec | null): string {
  if (!s) return out;
  return out.replaceAll('{i}', String(s.index)).replaceAll('{n}', String(s.count));
}

// ---------------------------------------------------------------------------------------------- merge

/** The summary a sensitivity file carries in its safetensors metadata (refuses other files). */
export function readSummary(r: SafetensorsReader): SensSummary {
  const meta = r.metadata ?? {};
  if (meta.format !== SENS_FORMAT || typeof meta[SUMMARY_METADATA_KEY] !== 'string') {
    throw new InputError(
      r.source,
      `not a sensitivity file written by "nuggets sense" (no ${SENS_FORMAT} metadata)`,
    );
  }
  let s: SensSummary;
  try {
    s = JSON.parse(meta[SUMMARY_METADATA_KEY]) as SensSummary;
  } catch (e) {
    throw new InputError(r.source, `its summary metadata is not valid JSON: ${(e as Error).message}`);
  }
  if (s.version !== SENS_VERSION)
    throw new InputError(
      r.source,
      `sensitivity format version ${String(s.version)} is not supported (expected ${SENS_VERSION})`,
    );
  return s;
}

/** Options that change S: shards must agree on them. */
const MERGE_KEYS = ['numSeeds', 'chatFormat', 'effectiveMaxLength', 'overflow'] as const;

/**
 * Sums shard files into `out` (f32, bf16 or f16; the shards may be of any of them), after checking that they are shards of one run: the
 * same teacher config, seed file (sha256), options and shard count, each index exactly once, the
 * same tensors. Tensors are summed one at a time (shard order), so memory stays at two tensors.
 */
export function mergeSensitivity(
  inputs: readonly string[],
  out: string,
  dtype: SensDtype,
  log: (line: string) => void = () => {},
): SensSummary {
  if (inputs.length === 0) throw new InputError('sense merge', 'no shard files given');
  const readers: SafetensorsReader[] = [];
  try {
    for (const p of inputs) readers.push(openSafetensors(p));
    const sums = readers.map((r) => readSummary(r));
    const problems: string[] = [];
    const first = sums[0];
    const n = first.seeds.shard?.count;
    const seen = new Map<number, string>();
    sums.forEach((s, i) => {
      const p = inputs[i];
      if (!s.seeds.shard) {
        problems.push(`${p} is not a shard (written without --shard)`);
        return;
      }
      if (s.seeds.shard.count !== n)
        problems.push(
          `${p} is shard ${s.seeds.shard.index}/${s.seeds.shard.count}, but ${inputs[0]} is of ${n} shards`,
        );
      const dup = seen.get(s.seeds.shard.index);
      if (dup !== undefined) problems.push(`${p} and ${dup} are both shard ${s.seeds.shard.index}`);
      seen.set(s.seeds.shard.index, p);
      if (JSON.stringify(s.teacher.config) !== JSON.stringify(first.teacher.config))
        problems.push(`${p} was computed on another teacher config than ${inputs[0]}`);
      if (s.seeds.sha256 !== first.seeds.sha256)
        problems.push(`${p} used another seed file than ${inputs[0]} (sha256 differs)`);
      for (const key of MERGE_KEYS) {
        if (JSON.stringify(s.options[key]) !== JSON.stringify(first.options[key])) {
          problems.push(
            `${p} has ${key} = ${JSON.stringify(s.options[key])}, ${inputs[0]} has ${JSON.stringify(first.options[key])}`,
          );
        }
      }
      const names = readers[i].names(),
        names0 = readers[0].names();
      if (names.join('\n') !== names0.join('\n')) problems.push(`${p} holds other tensors than ${inputs[0]}`);
      else
        for (const name of names)
          if (readers[i].info(name).shape.join() !== readers[0].info(name).shape.join())
            problems.push(`${p}: ${name} has another shape than in ${inputs[0]}`);
    });
    if (problems.length === 0 && n !== undefined) {
      const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !seen.has(i));
      if (missing.length) problems.push(`shard(s) ${missing.join(', ')} of ${n} are missing`);
    }
    if (problems.length)
      throw new InputError('sense merge', `cannot merge:\n  - ${[...new Set(problems)].join('\n  - ')}`);

    // shard order, so that the result does not depend on the order the files were listed in
    const order = sums
      .map((s, i) => ({ i, at: s.seeds.shard!.index }))
      .sort((a, b) => a.at - b.at)
      .map((x) => x.i);
    const k = kernels();
    const tensors: SensSummary['tensors'] = {};
    for (const name of Object.keys(first.tensors)) {
      tensors[name] = {
        shape: first.tensors[name].shape,
        sum: order.reduce((a, i) => a + sums[i].tensors[name].sum, 0),
      };
    }
    const layers = first.layers.map((_, l) => order.reduce((a, i) => a + sums[i].layers[l], 0));
    const outerSum = (key: keyof SensSummary['outer']) => {
      if (first.outer[key] === null) return null;
      return order.reduce((a, i) => a + (sums[i].outer[key] ?? 0), 0);
    };
    const perSeed: SeedLoss[] = order.flatMap((i) => sums[i].loss.perSeed).sort((a, b) => a.index - b.index);
    const computes = sums.map((s) => s.compute).filter((c) => c !== null);
    const seconds = computes.reduce((a, c) => a + c.seconds, 0);
    const tokens = computes.reduce((a, c) => a + c.tokens, 0);
    const summary: SensSummary = {
      ...first,
      created: new Date().toISOString(),
      seeds: {
        ...first.seeds,
        indices: perSeed.map((s) => s.index),
        shard: null,
        mergedFrom: order.map((i) => inputs[i]),
      },
      options: { ...first.options, dtype },
      encode: first.encode,
      loss: { mean: perSeed.reduce((a, s) => a + s.loss, 0) / perSeed.length, perSeed },
      tensors,
      layers,
      outer: {
        embed_tokens: outerSum('embed_tokens')!,
        norm: outerSum('norm')!,
        lm_head: outerSum('lm_head'),
      },
      total: Object.values(tensors).reduce((a, t) => a + t.sum, 0),
      compute:
        computes.length === sums.length
          ? {
              backend: computes[0].backend,
              streaming: computes.every((c) => c.streaming),
              seconds,
              tokens,
              answerTokens: computes.reduce((a, c) => a + c.answerTokens, 0),
              tokensPerSecond: seconds > 0 ? tokens / seconds : 0,
            }
          : null,
    };
    const f16 = dtype === 'f16' ? new F16Fit() : null;
    writeSafetensorsLazy(
      out,
      readers[0].names().map((name) => ({
        name,
        shape: readers[0].info(name).shape,
        dtype: safetensorsDtype(dtype),
        load: () => {
          // get() gives float32 whatever the shard's dtype
          const acc = readers[order[0]].get(name);
          for (const i of order.slice(1)) {
            const x = readers[i].get(name);
            for (let e = 0; e < acc.length; e++) acc[e] += x[e];
          }
          if (!Number.isFinite(k.sum(acc, acc.length)))
            throw new InputError(name, 'the merged sensitivity holds NaN or Inf');
          return f16 ? f16.fit(acc) : acc;
        },
      })),
      { format: SENS_FORMAT, [SUMMARY_METADATA_KEY]: JSON.stringify(summary) },
    );
    writeJsonAtomic(summaryPathFor(out), summary);
    const note = f16?.note(out);
    if (note) log(`sense merge: ${note}`);
    return summary;
  } finally {
    for (const r of readers) r.close();
  }
}
