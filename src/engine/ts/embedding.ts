/** Token embedding lookup and its scatter-add backward. Ids are checked: a bad id is a clear error, not garbage. */
import type { F32 } from '../kernels.js';

function checkId(id: number, i: number, vocab: number): void {
  if (!(id >= 0 && id < vocab)) {
    throw new RangeError(`embedding: ids[${i}] = ${id} is outside the table's ${vocab} rows`);
  }
}

export function embeddingForward(out: F32, ids: Int32Array, table: F32, n: number, dim: number): void {
  const vocab = Math.floor(table.length / dim);
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    checkId(id, i, vocab);
    const src = id * dim,
      dst = i * dim;
    for (let c = 0; c < dim; c++) out[dst + c] = table[src + c];
  }
}

/** dtable[ids[i]] += dout[i]; repeated ids accumulate (the table is a parameter: accumulate, never overwrite). */
export function embeddingBackward(dtable: F32, dout: F32, ids: Int32Array, n: number, dim: number): void {
  const vocab = Math.floor(dtable.length / dim);
  for (let i = 0; i < n; i++) checkId(ids[i], i, vocab);
  for (let i = 0; i < n; i++) {
    const dst = ids[i] * dim,
      src = i * dim;
    for (let c = 0; c < dim; c++) dtable[dst + c] += dout[src + c];
  }
}
