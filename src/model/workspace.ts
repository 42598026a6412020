/**
 * Reusable buffers. Activations and gradients are written into buffers that grow on demand and are
 * kept across steps, so a training loop allocates once (llm.c style) instead of per call.
 *
 * Buffers are allocated with `alloc` (src/engine/alloc.ts): Float32Array normally, Float64Array in
 * the float64 gradient-check mode. A buffer made under the other precision is replaced.
 */
import { alloc, getPrecision } from '../engine/alloc.js';

type F32 = Float32Array;

function matchesPrecision(buf: F32): boolean {
  return (getPrecision() === 'f64') === (buf as unknown) instanceof Float64Array;
}

/** One growable buffer. `view(n)` returns its first n elements (contents are NOT cleared). */
export class Growable {
  private buf: F32 | null = null;

  view(n: number): F32 {
    if (!this.buf || this.buf.length < n || !matchesPrecision(this.buf)) this.buf = alloc(n);
    return this.buf.subarray(0, n);
  }

  /** Like view(n) but zero-filled. */
  zeros(n: number): F32 {
    const v = this.view(n);
    v.fill(0);
    return v;
  }

  /** Drops the storage (the next view allocates again). */
  release(): void {
    this.buf = null;
  }
}

/**
 * Named scratch buffers shared by modules whose temporaries are never live at the same time
 * (e.g. the backward temporaries of all decoder layers, which run one after the other).
 */
export class Workspace {
  private readonly bufs = new Map<string, Growable>();
  private onesBuf: F32 | null = null;

  view(key: string, n: number): F32 {
    let g = this.bufs.get(key);
    if (!g) {
      g = new Growable();
      this.bufs.set(key, g);
    }
    return g.view(n);
  }

  zeros(key: string, n: number): F32 {
    const v = this.view(key, n);
    v.fill(0);
    return v;
  }

  /** A vector of n ones (bias broadcast and bias gradients go through GEMM with it). */
  ones(n: number): F32 {
    if (!this.onesBuf || this.onesBuf.length < n || !matchesPrecision(this.onesBuf)) {
      this.onesBuf = alloc(Math.max(n, 64));
      this.onesBuf.fill(1);
    }
    return this.onesBuf.subarray(0, n);
  }

  release(): void {
    this.bufs.clear();
    this.onesBuf = null;
  }
}
