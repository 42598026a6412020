/**
 * `nuggets random-model <config.json|folder> -o <folder>`: an HF model folder with random weights at a
 * config's real shapes (bf16, sharded as save_pretrained shards, a synthetic byte-level BPE tokenizer of
 * the config's vocabulary size), so the pipeline and the benchmarks run at 0.5B-13B without the real
 * weights. src/io/random-model.ts does the work.
 */
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { parseShardSize } from '../io/checkpoint.js';
import { writeRandomModel } from '../io/random-model.js';
import type { WriteDtype } from '../io/safetensors.js';

const DTYPES: Record<string, WriteDtype> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

export interface RandomModelCliOptions {
  out: string;
  dtype: string;
  seed: string;
  maxShardSize: string;
  tokenizerFrom?: string;
  force?: boolean;
}

export function registerRandomModel(program: Command): void {
  program
    .command('random-model')
    .description(
      "write an HF model folder with random weights at a config.json's real shapes (benchmarks, dry runs)",
    )
    .argument('<config>', 'config.json, or a folder holding one (e.g. fixtures/configs/llama-2-7b)')
    .requiredOption('-o, --out <folder>', 'model folder to write')
    .option('--dtype <dtype>', 'storage dtype: bf16, f16 or f32', 'bf16')
    .option('--seed <n>', 'random seed (same seed, same bytes)', '0')
    .option('--max-shard-size <size>', "shard size, as transformers' save_pretrained", '5GB')
    .option(
      '--tokenizer-from <folder>',
      'copy this tokenizer instead of writing a synthetic one of the full vocabulary size (ids past its vocabulary are then never produced)',
    )
    .option('--force', 'replace a non-empty output folder')
    .action((config: string, opts: RandomModelCliOptions) => {
      const dtype = DTYPES[opts.dtype];
      if (!dtype) throw new InputError('--dtype', `must be bf16, f16 or f32, not "${opts.dtype}"`);
      const seed = Number(opts.seed);
      if (!Number.isSafeInteger(seed) || seed < 0)
        throw new InputError('--seed', `must be a non-negative integer, not "${opts.seed}"`);
      const files = writeRandomModel(config, opts.out, {
        seed,
        dtype,
        maxShardBytes: parseShardSize(opts.maxShardSize),
        tokenizerFrom: opts.tokenizerFrom,
        force: opts.force,
      });
      console.log(`wrote ${opts.out}: ${files.join(', ')}`);
    });
}
