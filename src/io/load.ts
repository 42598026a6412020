/**
 * One entry point for "a model": an HF folder (config.json + safetensors + tokenizer.json) or a llama2.c
 * checkpoint file (with tokenizer.bin beside it, or given). Returns the config, a lazy WeightSource in HF
 * tensor names, and the tokenizer.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import type { WeightSource } from '../model/weights.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { openHfModel } from './checkpoint.js';
import { readLlama2c, toHfLayout } from './llama2c.js';
import { loadTokenizer } from './tokenizer-hf.js';
import { Llama2cTokenizer } from './tokenizer-llama2c.js';

export interface ModelSource {
  config: ModelConfig;
  weights: WeightSource;
  tokenizer: Tokenizer;
  /** Where the model came from. Both run in the HF layout (llama2.c q/k rows are permuted on import). */
  format: 'hf' | 'llama2c';
}

export interface LoadOptions {
  /** A tokenizer to use instead of the one beside the model (tokenizer.bin, tokenizer.json or a folder). */
  tokenizer?: string;
}

/** The path given, resolved to an HF folder or a llama2.c checkpoint file. */
export function resolveModelPath(path: string): { target: string; format: 'hf' | 'llama2c' } {
  if (!existsSync(path)) throw new InputError(path, 'no such file or folder');
  let target = path;
  // A path to a weight file inside an HF folder means the folder.
  if (
    statSync(path).isFile() &&
    /(^model.*\.safetensors$)|(\.index\.json$)|(^config\.json$)/.test(basename(path))
  )
    target = dirname(path);
  return { target, format: statSync(target).isDirectory() ? 'hf' : 'llama2c' };
}

export function loadModelSource(path: string, opts: LoadOptions = {}): ModelSource {
  const { target, format } = resolveModelPath(path);
  if (format === 'hf') {
    const { config, weights } = openHfModel(target);
    try {
      const tokenizer = loadTokenizer(opts.tokenizer ?? target, config.vocabSize);
      checkVocab(tokenizer, config, opts.tokenizer ?? target);
      return { config, weights, tokenizer, format: 'hf' };
    } catch (e) {
      weights.close();
      throw e;
    }
  }
  const { config, weights } = toHfLayout(readLlama2c(target));
  const tokPath = opts.tokenizer ?? join(dirname(target), 'tokenizer.bin');
  if (!existsSync(tokPath)) {
    throw new InputError(
      target,
      `llama2.c checkpoint needs its tokenizer: no ${tokPath} (give one with --tokenizer)`,
    );
  }
  const tokenizer = tokPath.endsWith('.bin')
    ? Llama2cTokenizer.fromFile(tokPath, config.vocabSize)
    : loadTokenizer(tokPath, config.vocabSize);
  checkVocab(tokenizer, config, tokPath);
  return { config, weights, tokenizer, format: 'llama2c' };
}

/** A model's vocabulary may be padded beyond its tokenizer's, never the other way round. */
function checkVocab(tok: Tokenizer, c: ModelConfig, source: string): void {
  if (tok.vocabSize > c.vocabSize) {
    throw new InputError(
      source,
      `tokenizer has ${tok.vocabSize} tokens but the model's vocab_size is ${c.vocabSize} (wrong tokenizer for this model?)`,
    );
  }
}
