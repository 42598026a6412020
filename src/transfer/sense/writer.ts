/** The sensitivity file: safetensors (HF tensor order) plus its JSON summary, both written atomically. */
import { writeJsonAtomic } from '../../io/atomic.js';
import { writeSafetensorsLazy } from '../../io/safetensors.js';
import { expectedTensorNames, type ModelConfig } from '../../model/config.js';
import { releaseMemory } from './release-memory.js';
import type { SensSink } from './sink.js';
import { SENS_FORMAT, SUMMARY_METADATA_KEY, summaryPathFor, type SensSummary } from './summary.js';

/**
 * Writes the sensitivity safetensors (tensors in the teacher's HF order, f32 or bf16, one read at a
 * time from the sink) and the JSON summary beside it, both atomically.
 */
export function writeSensitivityFile(
  path: string,
  sink: SensSink,
  c: ModelConfig,
  dtype: 'f32' | 'bf16',
  summary: SensSummary,
): void {
  const names = expectedTensorNames(c);
  writeSafetensorsLazy(
    path,
    names.map((name) => ({
      name,
      shape: sink.shape(name),
      dtype: dtype === 'bf16' ? ('BF16' as const) : ('F32' as const),
      load: () => {
        // the previous tensor is written: free it before reading a big one
        if (sink.shape(name).reduce((a, b) => a * b, 4) >= 16 << 20) releaseMemory();
        return sink.get(name);
      },
    })),
    { format: SENS_FORMAT, [SUMMARY_METADATA_KEY]: JSON.stringify(summary) },
  );
  writeJsonAtomic(summaryPathFor(path), summary);
}
