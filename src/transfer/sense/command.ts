/**
 * The `sense` step end to end (docs/method.md step 1): a teacher and a seed file -> a sensitivity
 * safetensors (one tensor per teacher parameter, f32, bf16 or f16) and a JSON summary beside it
 * (per-tensor and per-layer sums, the loss of each seed). Reads and encodes the seeds, picks this
 * run's shard (docs/sharding.md), runs layer by layer by default (streaming.ts), spilling the seeds'
 * layer-boundary states to a scratch folder beside the output (or `scratchDir`) when they are big
 * (`spill`; docs/memory.md), and writes the file atomically. An aborted run (the signal) throws
 * SenseAborted and leaves no output.
 *
 * The library's `sense` (src/api/steps.ts) validates the options and calls `senseCommand`.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { OptionsOf } from '../../config/parse.js';
import { InputError } from '../../errors.js';
import { loadModelSource } from '../../io/load.js';
import { readExamples } from '../../data/examples.js';
import { TULU, type ChatFormat } from '../../data/chat.js';
import { templateFormat } from '../../data/template.js';
import { describeReport, encodeExamples } from '../../data/encode.js';
import { kernels } from '../../engine/backend.js';
import { sha256File } from '../manifest.js';
import { parseShard, shardFromEnv, shardPath, shardRange, type ShardSpec } from '../shard.js';
import { Progress, type ProgressMode } from '../../train/progress.js';
import { SenseAborted } from './abort.js';
import { boundaryBytes, spills } from './boundaries.js';
import { prepareOutputFolder, senseOutputFile } from './output.js';
import { runSense } from './run.js';
import { toSenseExamples } from './seeds.js';
import { DiskSink, MemorySink, type SensSink } from './sink.js';
import {
  SENS_FORMAT,
  SENS_VERSION,
  TIED_NOTE,
  summaryPathFor,
  tensorSums,
  type SensSummary,
} from './summary.js';
import { writeSensitivityFile } from './writer.js';

/** The `sense` schema's options, plus the shard taken from the scheduler's environment. */
export type SenseCommandOptions = OptionsOf<'sense'> & { shardFromEnv?: boolean; shardCount?: number };

/** How a run reports and is stopped: messages, the progress bar, an abort signal, the environment. */
export interface SenseIo {
  signal?: AbortSignal;
  /** Messages (reports, notes); default stderr. */
  log?: (line: string) => void;
  progressMode?: ProgressMode;
  env?: NodeJS.ProcessEnv;
}

/** The shard this run processes: --shard, or the scheduler's environment, or none. */
export function resolveShard(
  o: SenseCommandOptions,
  env: NodeJS.ProcessEnv,
): (ShardSpec & { from: string }) | null {
  if (o.shard !== undefined && o.shardFromEnv)
    throw new InputError('sense', 'give --shard or --shard-from-env, not both');
  if (o.shard !== undefined) {
    const s = parseShard(o.shard);
    if (o.shardCount !== undefined && o.shardCount !== s.count)
      throw new InputError('--shard-count', `${o.shardCount} disagrees with --shard ${o.shard}`);
    return { ...s, from: '--shard' };
  }
  if (o.shardFromEnv) return shardFromEnv(env, o.shardCount);
  if (o.shardCount !== undefined)
    throw new InputError('--shard-count', 'only means something with --shard-from-env');
  return null;
}

/** Runs `sense` end to end; returns the output path and its summary. */
export async function senseCommand(
  o: SenseCommandOptions,
  io: SenseIo = {},
): Promise<{ out: string; summary: SensSummary }> {
  const log = io.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const shard = resolveShard(o, io.env ?? process.env);
  if (shard && shard.from !== '--shard' && !o.out.includes('{i}')) {
    throw new InputError(
      '--out',
      `"${o.out}" has no {i}: with --shard-from-env every shard runs the same command, so name the output per shard, e.g. sens-{i}-of-{n}.safetensors`,
    );
  }
  const out = senseOutputFile(shardPath(o.out, shard));
  if (!existsSync(o.seeds)) throw new InputError(o.seeds, 'no such seed file');
  if (o.spill === 'always' && !o.streaming)
    throw new InputError(
      '--spill',
      'always spills the layer-boundary states of streaming; --no-streaming holds the whole model in memory',
    );
  if (o.scratchDir !== undefined && !(existsSync(o.scratchDir) && statSync(o.scratchDir).isDirectory()))
    throw new InputError(o.scratchDir, 'no such folder (--scratch-dir)');
  prepareOutputFolder(out, log);

  const src = loadModelSource(o.teacher, { tokenizer: o.tokenizer });
  let sink: SensSink | null = null;
  try {
    const c = src.config;
    // Seeds: the first k rows (malformed lines and empty answers are refused with their line).
    const examples = readExamples(o.seeds, { limit: o.numSeeds, maxLineChars: o.maxLineKb * 1024 });
    if (examples.length < o.numSeeds)
      log(
        `sense: ${o.seeds} has ${examples.length} examples (fewer than --num-seeds ${o.numSeeds}); using all of them`,
      );
    const format: ChatFormat =
      o.chatFormat === 'template' ? templateFormat(src.tokenizer, o.tokenizer ?? o.teacher) : TULU;
    const maxLength = Math.min(o.maxLength, c.maxPositionEmbeddings);
    const lengthNote =
      maxLength < o.maxLength
        ? `max length ${o.maxLength} lowered to the teacher's context of ${maxLength} tokens`
        : null;
    if (lengthNote) log(`sense: ${lengthNote}`);
    const { examples: encoded, report } = encodeExamples(
      examples,
      src.tokenizer,
      { format, maxLength, overflow: o.overflow },
      o.seeds,
    );
    log(`sense: ${o.seeds}: ${describeReport(report, maxLength)}`);

    // Global seed index = position among the k examples read (stable across shards).
    const indexOfLine = new Map(examples.map((e, i) => [e.line, i]));
    let seeds = encoded.map((e) => toSenseExamples([e], indexOfLine.get(e.line)!)[0]);
    if (shard) {
      const { start, end } = shardRange(examples.length, shard);
      seeds = seeds.filter((s) => s.index >= start && s.index < end);
      if (end <= start)
        throw new InputError(
          '--shard',
          `shard ${shard.index}/${shard.count} of ${examples.length} seeds is empty; use at most ${examples.length} shards`,
        );
      if (seeds.length === 0)
        throw new InputError(
          '--shard',
          `every seed of shard ${shard.index}/${shard.count} (seeds ${start}..${end - 1}) was skipped`,
        );
      log(
        `sense: shard ${shard.index}/${shard.count} (from ${shard.from}): seeds ${start}..${end - 1} of ${examples.length}`,
      );
    }

    const scratchDir = o.scratchDir ?? dirname(resolve(out));
    if (o.streaming) {
      const tokens = seeds.reduce((a, s) => a + s.ids.length, 0);
      const bytes = boundaryBytes(c.numLayers, tokens, c.hiddenSize);
      log(
        `sense: the seeds' layer-boundary states take ${(bytes / 1e9).toFixed(2)} GB: ` +
          (spills(o.spill, bytes) ? `spilled to a scratch folder in ${scratchDir}` : 'kept in memory'),
      );
    }
    // bf16 parts are what the bf16 file will hold; f16 parts stay f32 so the writer sees (and counts)
    // the values f16 cannot hold
    sink = o.streaming ? new DiskSink(out, o.dtype === 'bf16' ? 'bf16' : 'f32') : new MemorySink();
    const progress = new Progress({
      label: 'sense',
      total: 1000,
      mode: o.progress ? (io.progressMode ?? 'auto') : 'off',
    });
    let run;
    try {
      run = await runSense({ config: c, weights: src.weights }, seeds, sink, {
        streaming: o.streaming,
        spill: o.spill,
        // beside the output by default: the disk chosen for big files (os.tmpdir() may be RAM)
        scratchDir,
        signal: io.signal,
        onProgress: (done, total, fields) => progress.update(Math.floor((1000 * done) / total), fields),
      });
    } finally {
      progress.stop();
    }

    const sums = tensorSums(sink, c);
    const perSeed = run.losses;
    const summary: SensSummary = {
      format: SENS_FORMAT,
      version: SENS_VERSION,
      created: new Date().toISOString(),
      teacher: { path: o.teacher, config: c },
      seeds: {
        path: o.seeds,
        sha256: sha256File(o.seeds).sha256,
        used: examples.length,
        indices: perSeed.map((s) => s.index),
        shard: shard ? { index: shard.index, count: shard.count } : null,
      },
      options: {
        numSeeds: o.numSeeds,
        chatFormat: o.chatFormat,
        maxLength: o.maxLength,
        effectiveMaxLength: maxLength,
        overflow: o.overflow,
        dtype: o.dtype,
        streaming: o.streaming,
      },
      encode: {
        truncatedLines: report.truncatedLines,
        skippedLines: report.skippedLines,
        maxLength,
        note: lengthNote,
      },
      loss: { mean: perSeed.reduce((a, s) => a + s.loss, 0) / perSeed.length, perSeed },
      tiedEmbeddings: c.tieWordEmbeddings ? TIED_NOTE : null,
      ...sums,
      compute: {
        backend: kernels().name,
        streaming: run.streaming,
        seconds: run.seconds,
        tokens: run.tokens,
        answerTokens: run.answerTokens,
        tokensPerSecond: run.seconds > 0 ? run.tokens / run.seconds : 0,
      },
    };
    if (io.signal?.aborted) throw new SenseAborted();
    const note = writeSensitivityFile(out, sink, c, o.dtype, summary);
    if (note) log(`sense: ${note}`);
    log(
      `sense: wrote ${out} and ${summaryPathFor(out)}: ${perSeed.length} seeds, mean answer loss ${summary.loss.mean.toFixed(4)}, ` +
        `${run.tokens} tokens in ${run.seconds.toFixed(1)} s (${summary.compute!.tokensPerSecond.toFixed(1)} tokens/s)`,
    );
    return { out, summary };
  } finally {
    sink?.close();
    src.weights.close();
  }
}
