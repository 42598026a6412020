/**
 * llama.cpp (through node-llama-cpp's prebuilt CPU binary, loaded from node_modules: nothing is
 * downloaded or built) as the independent reference for GGUF exports: greedy continuations of given
 * token ids, with or without a GGUF LoRA applied.
 *
 * One thread per context: on a machine with fewer cores than busy threads, ggml's spinning thread
 * pool can stall for seconds per token, and the tiny models gain nothing from more threads. The KV
 * cache is kept in f32 (llama.cpp's default is f16), so an f32 export runs in f32 throughout.
 */
import { getLlama, LlamaLogLevel, type Llama, type Token } from 'node-llama-cpp';

let llama: Promise<Llama> | null = null;

export function llamaCpp(): Promise<Llama> {
  llama ??= getLlama({
    gpu: false,
    build: 'never',
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
  });
  return llama;
}

export interface LlamaRun {
  /** Greedy continuation (EOS included when it comes, then stops). */
  tokens: number[];
  /** The model's own tokenization of `text` (no BOS), when asked for. */
  tokenized: number[] | null;
}

/** Loads a GGUF model (+ a GGUF LoRA), feeds `prompt` ids and takes `n` greedy tokens. */
export async function llamaGreedy(
  modelPath: string,
  prompt: readonly number[],
  n: number,
  o: { lora?: string; tokenize?: string } = {},
): Promise<LlamaRun> {
  const model = await (await llamaCpp()).loadModel({ modelPath, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({
      contextSize: 256,
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
      ...(o.lora ? { lora: { adapters: [{ filePath: o.lora, scale: 1 }] } } : {}),
    });
    const tokens: number[] = [];
    for await (const t of ctx
      .getSequence()
      .evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
      tokens.push(t);
      if (tokens.length >= n || model.isEogToken(t)) break;
    }
    await ctx.dispose();
    return { tokens, tokenized: o.tokenize === undefined ? null : model.tokenize(o.tokenize) };
  } finally {
    await model.dispose();
  }
}
