/**
 * `nuggets export gguf <model> [--adapter A] -o model.gguf [--outtype f32|f16|bf16|q8_0]` and
 * `nuggets export gguf-lora <adapter> --base <model> -o lora.gguf`: a model (with an adapter merged in
 * memory, src/train/merge.ts) or a PEFT adapter as the GGUF files llama.cpp and its bindings load
 * (docs/gguf.md). Options come from the `export-gguf` / `export-gguf-lora` schemas; the files are
 * written by src/io/gguf/. Paths are checked before anything is read, and an existing output is
 * replaced only with --force.
 */
import type { Command } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { addSchemaOptions, foldAlias, resolveOptions, type OptionsOf } from '../config/cli.js';
import { InputError } from '../errors.js';
import { writeGgufLora } from '../io/gguf/lora.js';
import { writeGgufModel, type GgufWriteSummary } from '../io/gguf/model.js';
import { loadModelSource } from '../io/load.js';
import { ADAPTER_MARKER } from '../train/export.js';
import { mergeModel } from '../train/merge.js';
import { readAdapter } from '../transfer/peft.js';

function checkOut(out: string, force: boolean): void {
  if (!existsSync(out)) return;
  if (statSync(out).isDirectory()) throw new InputError(out, 'is a folder; give the GGUF file to write');
  if (!force) throw new InputError(out, 'already exists; choose another name or pass --force to overwrite');
}

/** Refuses the trained_adapter/ folder of a subtract-trick run (its factors apply to W - B0*A0, not to the student). */
function checkAdapterFolder(adapter: string): void {
  if (!existsSync(adapter)) throw new InputError(adapter, 'no such adapter folder');
  const marker = join(adapter, ADAPTER_MARKER);
  if (!existsSync(marker)) return;
  let base: unknown = null;
  try {
    base = (JSON.parse(readFileSync(marker, 'utf8')) as { base?: unknown }).base;
  } catch {
    /* an unreadable marker says nothing */
  }
  if (base === 'student-minus-init')
    throw new InputError(
      adapter,
      'holds the trained factors of a subtract-trick run, which apply to W - scale*B0*A0, not to the untouched student; export the adapter in the parent folder instead',
    );
}

function nameOf(path: string): string {
  return basename(resolve(path)).replace(/\.(bin|safetensors)$/, '');
}

export function exportGgufCommand(o: OptionsOf<'export-gguf'>): GgufWriteSummary & { merged: number } {
  checkOut(o.out, o.force);
  if (o.adapter) checkAdapterFolder(o.adapter);
  const src = loadModelSource(o.model, { tokenizer: o.tokenizer });
  try {
    let config = src.config;
    let weights = src.weights;
    let merged = 0;
    if (o.adapter) {
      const adapter = readAdapter(o.adapter, src.config);
      const m = mergeModel(src, adapter.modules);
      config = m.config;
      weights = m;
      merged = adapter.modules.length;
    }
    const summary = writeGgufModel(
      o.out,
      { config, weights, tokenizer: src.tokenizer, name: o.name ?? nameOf(o.model), source: o.model },
      o.outtype,
    );
    return { ...summary, merged };
  } finally {
    src.weights.close();
  }
}

export function exportGgufLoraCommand(o: OptionsOf<'export-gguf-lora'>): number {
  checkOut(o.out, o.force);
  checkAdapterFolder(o.adapter);
  const src = loadModelSource(o.base);
  try {
    const adapter = readAdapter(o.adapter, src.config);
    return writeGgufLora(o.out, adapter.modules, src.config, {
      name: o.name ?? nameOf(o.adapter),
      out: o.outtype,
      source: o.adapter,
    });
  } finally {
    src.weights.close();
  }
}

export function registerExport(program: Command): void {
  const exp = program
    .command('export')
    .description("write a model or an adapter in another ecosystem's format (gguf, gguf-lora: llama.cpp)");

  const gguf = exp
    .command('gguf')
    .description('a model (with an adapter merged in) as one GGUF file for llama.cpp')
    .argument('[model]', 'model to export (or --model)');
  addSchemaOptions(gguf, 'export-gguf');
  gguf.action((model: string | undefined, flags: Record<string, unknown>) => {
    foldAlias(
      flags,
      'model',
      model,
      'export gguf',
      () => `two models given: ${model} and --model ${String(flags.model)}`,
    );
    const opts = resolveOptions('export-gguf', flags);
    const r = exportGgufCommand(opts);
    const types = Object.entries(r.types)
      .map(([t, n]) => `${n} ${t}`)
      .join(', ');
    process.stdout.write(
      `wrote ${r.path}: ${r.tensors} tensors (${types})${r.merged ? `, ${r.merged} adapted matrices merged` : ''}\n`,
    );
  });

  const lora = exp
    .command('gguf-lora')
    .description('a PEFT LoRA adapter as a GGUF LoRA file that llama.cpp applies to the base model')
    .argument('[adapter]', 'adapter folder (or --adapter)');
  addSchemaOptions(lora, 'export-gguf-lora');
  lora.action((adapter: string | undefined, flags: Record<string, unknown>) => {
    foldAlias(
      flags,
      'adapter',
      adapter,
      'export gguf-lora',
      () => `two adapters given: ${adapter} and --adapter ${String(flags.adapter)}`,
    );
    const opts = resolveOptions('export-gguf-lora', flags);
    const n = exportGgufLoraCommand(opts);
    process.stdout.write(`wrote ${opts.out}: ${n / 2} LoRA modules (${n} tensors)\n`);
  });
}
