/**
 * docs/method.md step 1, teacher sensitivity: for every seed example j, one forward + backward of the
 * answer-only mean token cross-entropy, then `S += |theta * dL_j/dtheta|` for every parameter
 * element (the absolute value per example, summed over examples; kernels().sensAccumulate).
 *
 * Two executors compute the same S:
 * - `in-memory`: the whole model (LlamaModel) with gradients for every parameter, one example at a
 *   time. Simple, and the reference the streaming path is tested against.
 * - `streaming` (streaming.ts): layer by layer, so peak memory is about one layer plus the
 *   seeds' hidden states at layer boundaries, never the model.
 *
 * Each finished tensor's S goes to a SensSink as soon as it is final: memory (tests), or raw files
 * in a temporary folder next to the output (the CLI), assembled into one safetensors file at the end.
 * The output file appears atomically (src/io/atomic.ts) and an aborted run (Ctrl-C) removes the
 * temporary folder, so no partial output is ever left under any name.
 *
 * Tied embeddings: the teacher then has one tensor, model.embed_tokens.weight, used twice. Its
 * gradient per example is the sum of the lm_head and the embedding contributions (as PyTorch
 * accumulates it into the one tied parameter), and |theta * grad| is taken of that sum. The file
 * then holds no lm_head.weight (the teacher has none); src/transfer/modules.ts maps lm_head to the
 * embedding's name.
 */
import { InputError } from '../../errors.js';
import { checkExample, checkTeacherTensors } from './checks.js';
import { senseInMemory } from './in-memory.js';
import type { SensSink } from './sink.js';
import { senseStreaming } from './streaming.js';
import type { SeedLoss, SenseExample, SenseRun, SenseRunOptions, TeacherSource } from './types.js';

/** Runs step 1 on the examples, sending every tensor's S to the sink. */
export async function runSense(
  src: TeacherSource,
  examples: readonly SenseExample[],
  sink: SensSink,
  opts: SenseRunOptions = {},
): Promise<SenseRun> {
  if (examples.length === 0) throw new InputError('seeds', 'no seed examples to run');
  checkTeacherTensors(src.weights, src.config);
  for (const ex of examples) checkExample(ex, src.config);
  const t0 = performance.now();
  const streaming = opts.streaming ?? true;
  const losses: SeedLoss[] = streaming
    ? await senseStreaming(src, examples, sink, opts)
    : await senseInMemory(src, examples, sink, opts);
  let tokens = 0,
    answerTokens = 0;
  for (const ex of examples) {
    tokens += ex.ids.length;
    answerTokens += ex.nTargets;
  }
  return { losses, tokens, answerTokens, seconds: (performance.now() - t0) / 1000, streaming };
}
