/**
 * `nuggets convert <llama2c.bin> --tokenizer tokenizer.bin -o <folder>`: a llama2.c checkpoint to an HF
 * model folder (docs/formats.md "llama2.c checkpoints"). src/io/convert.ts does the work (q/k rows permuted for rotate_half
 * RoPE, tokenizer.json rebuilt from tokenizer.bin); this module checks the paths first, so that a
 * mistake is reported before anything is written, and refuses to overwrite a model without --force.
 */
import type { Command } from 'commander';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import { convertLlama2cToHf } from '../io/convert.js';
import { parseShardSize } from '../io/checkpoint.js';

export interface ConvertOptions {
  tokenizer?: string;
  out: string;
  force?: boolean;
  maxShardSize?: string;
}

/** Files of a folder that say it already holds a model (or a conversion of one). */
const MODEL_FILES = /^(config\.json|tokenizer\.json|model.*\.safetensors(\.index\.json)?)$/;

export function convertCommand(input: string, opts: ConvertOptions): string[] {
  if (!existsSync(input)) throw new InputError(input, 'no such file');
  if (statSync(input).isDirectory()) {
    throw new InputError(
      input,
      'is a folder; convert reads a llama2.c checkpoint file (an HF folder needs no conversion)',
    );
  }
  const tok = opts.tokenizer ?? join(dirname(input), 'tokenizer.bin');
  if (!existsSync(tok)) {
    throw new InputError(
      tok,
      opts.tokenizer
        ? 'no such tokenizer file'
        : 'no tokenizer.bin beside the checkpoint (give one with --tokenizer)',
    );
  }
  if (!tok.endsWith('.bin') || statSync(tok).isDirectory()) {
    throw new InputError(tok, 'convert needs the llama2.c tokenizer.bin of the checkpoint');
  }
  const out = opts.out;
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new InputError(out, 'exists and is not a folder');
    const clash = readdirSync(out).filter((f) => MODEL_FILES.test(f));
    if (clash.length > 0 && !opts.force) {
      throw new InputError(
        out,
        `already holds ${clash.join(', ')}; choose another folder or pass --force to overwrite`,
      );
    }
  } else {
    mkdirSync(out, { recursive: true });
  }
  const maxShardBytes = opts.maxShardSize === undefined ? undefined : parseShardSize(opts.maxShardSize);
  return convertLlama2cToHf(input, tok, out, { maxShardBytes });
}

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('convert a llama2.c checkpoint (+ tokenizer.bin) into a Hugging Face model folder')
    .argument('<checkpoint>', 'llama2.c checkpoint file (legacy v0 or fp32 v1 export)')
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin (default: tokenizer.bin beside the checkpoint)')
    .requiredOption('-o, --out <folder>', 'HF model folder to write')
    .option('--force', 'overwrite a model already in the output folder')
    .option(
      '--max-shard-size <size>',
      'split the weights into shards of at most this size, as HF does (default 5GB)',
    )
    .action((input: string, opts: ConvertOptions) => {
      const files = convertCommand(input, opts);
      console.log(`wrote ${opts.out}: ${files.join(', ')}`);
    });
}
