/** The sensitivity file: safetensors (HF tensor order) plus its JSON summary, both written atomically. */
import { floatToHalf } from '../../engine/dtype.js';
import { writeJsonAtomic } from '../../io/atomic.js';
import { writeSafetensorsLazy } from '../../io/safetensors.js';
import { expectedTensorNames, type ModelConfig } from '../../model/config.js';
import { releaseMemory } from './release-memory.js';
import type { SensSink } from './sink.js';
import { SENS_FORMAT, SUMMARY_METADATA_KEY, summaryPathFor, type SensSummary } from './summary.js';

/** Storage precision of a sensitivity file (S is computed in fp32 either way). */
export type SensDtype = 'f32' | 'bf16' | 'f16';

export function safetensorsDtype(dtype: SensDtype): 'F32' | 'BF16' | 'F16' {
  return dtype === 'bf16' ? 'BF16' : dtype === 'f16' ? 'F16' : 'F32';
}

/** Largest finite float16. */
const F16_MAX = 65504;
/** Smallest positive float16 (a subnormal); values near half of it and below round to zero. */
const F16_MIN = 2 ** -24;

/**
 * float16 has 5 exponent bits: S above 65504 would become Inf and S below about 2^-25 becomes 0 (bf16
 * keeps float32's range). Values above the range are stored as 65504 rather than Inf, so that the
 * file stays readable; both kinds are counted so that the run can say how many were affected.
 */
export class F16Fit {
  saturated = 0;
  flushed = 0;
  fit(data: Float32Array): Float32Array {
    let over = 0;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v > F16_MAX) over++;
      else if (v !== 0 && v < F16_MIN && v > -F16_MIN && (floatToHalf(v) & 0x7fff) === 0) this.flushed++;
    }
    if (over === 0) return data;
    this.saturated += over;
    // a copy: the caller's array may be the sink's own
    return data.map((v) => (v > F16_MAX ? F16_MAX : v));
  }
  /** A line for the log, or null when every value fit. */
  note(path: string): string | null {
    if (this.saturated === 0 && this.flushed === 0) return null;
    return (
      `${path}: float16 stored ${this.saturated} sensitivities above ${F16_MAX} as ${F16_MAX} and ` +
      `${this.flushed} nonzero ones below its smallest subnormal as 0; --dtype bf16 keeps float32's range`
    );
  }
}

/**
 * Writes the sensitivity safetensors (tensors in the teacher's HF order, f32, bf16 or f16, one read
 * at a time from the sink) and the JSON summary beside it, both atomically. Returns a note when
 * f16 could not hold some values (F16Fit), else null.
 */
export function writeSensitivityFile(
  path: string,
  sink: SensSink,
  c: ModelConfig,
  dtype: SensDtype,
  summary: SensSummary,
): string | null {
  const names = expectedTensorNames(c);
  const f16 = dtype === 'f16' ? new F16Fit() : null;
  writeSafetensorsLazy(
    path,
    names.map((name) => ({
      name,
      shape: sink.shape(name),
      dtype: safetensorsDtype(dtype),
      load: () => {
        // the previous tensor is written: free it before reading a big one
        if (sink.shape(name).reduce((a, b) => a * b, 4) >= 16 << 20) releaseMemory();
        const data = sink.get(name);
        return f16 ? f16.fit(data) : data;
      },
    })),
    { format: SENS_FORMAT, [SUMMARY_METADATA_KEY]: JSON.stringify(summary) },
  );
  writeJsonAtomic(summaryPathFor(path), summary);
  return f16?.note(path) ?? null;
}
