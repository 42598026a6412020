/**
 * The nuggets side of the PEFT interop check (scripts/interop/peft_check.py): loads an HF model
 * folder, attaches a PEFT LoRA adapter folder written by nuggets (PEFT semantics: y = W x +
 * (alpha/r) B A x; embedding delta (B A)^T) WITHOUT the subtract trick, runs a fixed prompt and
 * writes the logits as JSON.
 *
 *   node --import tsx scripts/interop/nuggets_logits.ts <model folder> <adapter folder> <out.json> [text]
 */
import { writeFileSync } from 'node:fs';
import { loadModelSource } from '../../src/io/load.js';
import { LlamaModel } from '../../src/model/model.js';
import { readAdapter } from '../../src/transfer/peft.js';
import { modulePath } from '../../src/transfer/modules.js';

const [
  model,
  adapter,
  out,
  text = 'Once upon a time, there was a little girl named Lily. She loved to play',
] = process.argv.slice(2);
if (!model || !adapter || !out) {
  console.error('usage: nuggets_logits.ts <model folder> <adapter folder> <out.json> [text]');
  process.exit(2);
}
const src = loadModelSource(model);
const m = LlamaModel.load(src);
src.weights.close();
const modules = readAdapter(adapter, src.config).modules;
for (const mod of modules)
  m.attachLora(modulePath(mod.ref), { r: mod.r, alpha: mod.alpha, A: mod.A, B: mod.B, dropout: 0 });
const ids = src.tokenizer.encode(text, { addBos: true });
const logits = m.forward({ ids: Int32Array.from(ids), B: 1, T: ids.length });
writeFileSync(
  out,
  JSON.stringify({
    model,
    adapter,
    text,
    ids,
    vocab: src.config.vocabSize,
    modules: modules.length,
    logits: Array.from(logits),
  }) + '\n',
);
console.error(
  `wrote ${out}: ${ids.length} tokens x ${src.config.vocabSize} logits, ${modules.length} LoRA modules`,
);
