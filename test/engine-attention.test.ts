/**
 * Causal grouped-query attention: an independent dense reference (explicit mask matrix, full
 * softmax), float64 finite differences of the backward, and native vs TypeScript on odd shapes,
 * GQA layouts, KV-cache offsets (Tq < Tk) and padding masks including fully masked rows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/engine/rng.js';
import { tsKernels as T } from '../src/engine/ts/index.js';
import type { Kernels } from '../src/engine/kernels.js';
import {
  asF32,
  assertClose,
  checkGradient,
  dot,
  nativeOrSkip,
  randF32,
  randF64,
} from './helpers/kernel-check.js';

const native = nativeOrSkip();
const N = native.k as Kernels;

interface Case {
  B: number;
  Tq: number;
  Tk: number;
  Hq: number;
  Hkv: number;
  hd: number;
  mask: Uint8Array | null;
}

/** Dense reference: for each (b, h) build the full [Tq, Tk] score matrix, mask it, softmax, multiply. */
function reference(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, c: Case, scale: number) {
  const { B, Tq, Tk, Hq, Hkv, hd, mask } = c;
  const out = new Float64Array(B * Tq * Hq * hd),
    probs = new Float64Array(B * Hq * Tq * Tk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor((h * Hkv) / Hq); // kv head of query head h
      for (let i = 0; i < Tq; i++) {
        const allowed: boolean[] = [];
        const s: number[] = [];
        for (let j = 0; j < Tk; j++) {
          allowed.push(j - (Tk - Tq) <= i && (!mask || mask[b * Tk + j] === 1));
          let acc = 0;
          for (let d = 0; d < hd; d++)
            acc += q[((b * Tq + i) * Hq + h) * hd + d] * k[((b * Tk + j) * Hkv + g) * hd + d];
          s.push(acc * scale);
        }
        const mx = Math.max(...s.filter((_, j) => allowed[j]));
        const e = s.map((x, j) => (allowed[j] ? Math.exp(x - mx) : 0));
        const z = e.reduce((a, x) => a + x, 0);
        for (let j = 0; j < Tk; j++) {
          const p = z > 0 ? e[j] / z : 0;
          probs[((b * Hq + h) * Tq + i) * Tk + j] = p;
          for (let d = 0; d < hd; d++)
            out[((b * Tq + i) * Hq + h) * hd + d] += p * v[((b * Tk + j) * Hkv + g) * hd + d];
        }
      }
    }
  }
  return { out, probs };
}

function makeMask(
  rng: Rng,
  B: number,
  Tk: number,
  kind: 'none' | 'left' | 'right' | 'random',
): Uint8Array | null {
  if (kind === 'none') return null;
  const m = new Uint8Array(B * Tk).fill(1);
  for (let b = 0; b < B; b++) {
    const pad = rng.int(Math.max(1, Tk)); // up to Tk - 1 padded keys
    for (let j = 0; j < Tk; j++) {
      if (kind === 'left' && j < pad) m[b * Tk + j] = 0;
      if (kind === 'right' && j >= Tk - pad) m[b * Tk + j] = 0;
      if (kind === 'random' && rng.uniform() < 0.3) m[b * Tk + j] = 0;
    }
  }
  return m;
}

function run(k: Kernels, q: Float32Array, kk: Float32Array, v: Float32Array, c: Case, scale: number) {
  const out = new Float32Array(c.B * c.Tq * c.Hq * c.hd).fill(NaN);
  const probs = new Float32Array(c.B * c.Hq * c.Tq * c.Tk).fill(NaN);
  k.attentionForward(out, probs, q, kk, v, c.mask, c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.hd, scale);
  return { out, probs };
}

test('attention on a 2-token hand example', () => {
  // One head, hd 1: q = [1, 2], k = [3, -1], v = [10, 20], scale 0.5.
  const out = new Float32Array(2),
    probs = new Float32Array(4);
  T.attentionForward(
    out,
    probs,
    Float32Array.from([1, 2]),
    Float32Array.from([3, -1]),
    Float32Array.from([10, 20]),
    null,
    1,
    2,
    2,
    1,
    1,
    1,
    0.5,
  );
  // Row 0 sees key 0 only; row 1 sees scores 0.5*2*3 = 3 and 0.5*2*-1 = -1.
  const p = 1 / (1 + Math.exp(-4));
  assertClose(probs, [1, 0, p, 1 - p], 1e-7, 'probs');
  assertClose(out, [10, 10 * p + 20 * (1 - p)], 1e-7, 'out');
});

test('attention forward matches the dense masked-softmax reference (GQA, KV cache, padding)', () => {
  const rng = new Rng(20);
  const cases: Case[] = [];
  for (const [Hq, Hkv] of [
    [6, 2],
    [3, 3],
    [4, 1],
  ]) {
    for (const [Tq, Tk] of [
      [5, 5],
      [2, 7],
      [1, 4],
      [4, 2],
    ]) {
      // [4, 2]: more queries than keys, early rows see none
      for (const kind of ['none', 'left', 'random'] as const) {
        const B = 2;
        cases.push({ B, Tq, Tk, Hq, Hkv, hd: 3, mask: makeMask(rng, B, Tk, kind) });
      }
    }
  }
  for (const c of cases) {
    const q = randF64(rng, c.B * c.Tq * c.Hq * c.hd),
      k = randF64(rng, c.B * c.Tk * c.Hkv * c.hd),
      v = randF64(rng, c.B * c.Tk * c.Hkv * c.hd);
    const out = new Float64Array(q.length),
      probs = new Float64Array(c.B * c.Hq * c.Tq * c.Tk).fill(NaN);
    T.attentionForward(
      asF32(out),
      asF32(probs),
      asF32(q),
      asF32(k),
      asF32(v),
      c.mask,
      c.B,
      c.Tq,
      c.Tk,
      c.Hq,
      c.Hkv,
      c.hd,
      0.7,
    );
    const want = reference(q, k, v, c, 0.7);
    const tag = JSON.stringify({ ...c, mask: c.mask && Array.from(c.mask) });
    assertClose(out, want.out, 1e-12, `out ${tag}`);
    assertClose(probs, want.probs, 1e-12, `probs ${tag}`);
  }
});

test('fully masked query rows give probs 0, out 0 and zero gradients', () => {
  // Left padding of 3 keys with Tq = Tk = 4: query rows 0..2 see no valid key.
  const c: Case = { B: 1, Tq: 4, Tk: 4, Hq: 2, Hkv: 1, hd: 2, mask: Uint8Array.from([0, 0, 0, 1]) };
  const rng = new Rng(21);
  for (const k of N ? [T, N] : [T]) {
    const q = randF32(rng, 16),
      kk = randF32(rng, 8),
      v = randF32(rng, 8);
    const { out, probs } = run(k, q, kk, v, c, 1);
    for (let h = 0; h < 2; h++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 4; j++)
          assert.equal(probs[(h * 4 + i) * 4 + j], 0, `${k.name}: probs h${h} i${i} j${j}`);
        for (let d = 0; d < 2; d++) assert.equal(out[(i * 2 + h) * 2 + d], 0, `${k.name}: out h${h} i${i}`);
      }
      assert.equal(probs[(h * 4 + 3) * 4 + 3], 1, `${k.name}: the last row attends only to key 3`);
    }
    const dq = new Float32Array(16).fill(NaN),
      dk = new Float32Array(8).fill(NaN),
      dv = new Float32Array(8).fill(NaN);
    k.attentionBackward(dq, dk, dv, randF32(rng, 16), q, kk, v, probs, 1, 4, 4, 2, 1, 2, 1);
    for (let i = 0; i < 3; i++)
      for (let x = 0; x < 4; x++) assert.equal(dq[i * 4 + x], 0, `${k.name}: dq of masked row ${i}`);
    for (let j = 0; j < 3; j++)
      for (let x = 0; x < 2; x++) {
        assert.equal(dk[j * 2 + x], 0, `${k.name}: dk of masked key ${j}`);
        assert.equal(dv[j * 2 + x], 0, `${k.name}: dv of masked key ${j}`);
      }
    assert.ok(
      dv.every(Number.isFinite) && dk.every(Number.isFinite) && dq.every(Number.isFinite),
      'all gradients written',
    );
  }
});

test('attention backward matches float64 finite differences (GQA, Tq < Tk, padding)', () => {
  const rng = new Rng(22);
  const cases: Case[] = [
    { B: 2, Tq: 3, Tk: 3, Hq: 4, Hkv: 2, hd: 3, mask: null },
    { B: 2, Tq: 2, Tk: 5, Hq: 3, Hkv: 1, hd: 4, mask: Uint8Array.from([0, 1, 1, 1, 1, 1, 1, 0, 1, 1]) },
    { B: 1, Tq: 4, Tk: 4, Hq: 2, Hkv: 2, hd: 2, mask: Uint8Array.from([0, 0, 1, 1]) },
  ];
  for (const c of cases) {
    const q = randF64(rng, c.B * c.Tq * c.Hq * c.hd, -2, 2),
      k = randF64(rng, c.B * c.Tk * c.Hkv * c.hd, -2, 2);
    const v = randF64(rng, c.B * c.Tk * c.Hkv * c.hd, -2, 2),
      R = randF64(rng, q.length);
    const scale = 1 / Math.sqrt(c.hd);
    const fwd = () => {
      const out = new Float64Array(q.length),
        probs = new Float64Array(c.B * c.Hq * c.Tq * c.Tk);
      T.attentionForward(
        asF32(out),
        asF32(probs),
        asF32(q),
        asF32(k),
        asF32(v),
        c.mask,
        c.B,
        c.Tq,
        c.Tk,
        c.Hq,
        c.Hkv,
        c.hd,
        scale,
      );
      return { out, probs };
    };
    const loss = (): number => dot(fwd().out, R);
    const { probs } = fwd();
    const dq = new Float64Array(q.length).fill(5),
      dk = new Float64Array(k.length).fill(5),
      dv = new Float64Array(v.length).fill(5);
    T.attentionBackward(
      asF32(dq),
      asF32(dk),
      asF32(dv),
      asF32(R),
      asF32(q),
      asF32(k),
      asF32(v),
      asF32(probs),
      c.B,
      c.Tq,
      c.Tk,
      c.Hq,
      c.Hkv,
      c.hd,
      scale,
    );
    const tag = `B${c.B} Tq${c.Tq} Tk${c.Tk} Hq${c.Hq} Hkv${c.Hkv}`;
    checkGradient(loss, q, dq, `dq ${tag}`);
    checkGradient(loss, k, dk, `dk ${tag}`);
    checkGradient(loss, v, dv, `dv ${tag}`);
  }
});

test(
  'attention native matches ts on odd shapes, GQA, KV cache and padding masks',
  { skip: native.skip },
  () => {
    const rng = new Rng(23);
    let n = 0;
    for (const [Hq, Hkv] of [
      [6, 2],
      [3, 3],
      [4, 1],
    ]) {
      for (const hd of [5, 33, 64]) {
        for (const [Tq, Tk] of [
          [1, 1],
          [3, 3],
          [17, 17],
          [1, 9],
          [4, 19],
          [6, 3],
        ]) {
          const kind = (['none', 'left', 'right', 'random'] as const)[n++ % 4];
          const B = 1 + (n % 2);
          const c: Case = { B, Tq, Tk, Hq, Hkv, hd, mask: makeMask(rng, B, Tk, kind) };
          const q = randF32(rng, B * Tq * Hq * hd, -2, 2),
            k = randF32(rng, B * Tk * Hkv * hd, -2, 2),
            v = randF32(rng, B * Tk * Hkv * hd);
          const scale = 1 / Math.sqrt(hd);
          const a = run(T, q, k, v, c, scale),
            b = run(N, q, k, v, c, scale);
          const tag = `B${B} Tq${Tq} Tk${Tk} Hq${Hq} Hkv${Hkv} hd${hd} mask=${kind}`;
          assertClose(b.out, a.out, 1e-5, `out ${tag}`);
          assertClose(b.probs, a.probs, 1e-5, `probs ${tag}`);
          const dout = randF32(rng, q.length);
          const g = (k2: Kernels) => {
            const dq = new Float32Array(q.length).fill(NaN),
              dk = new Float32Array(k.length).fill(NaN),
              dv = new Float32Array(v.length).fill(NaN);
            k2.attentionBackward(dq, dk, dv, dout, q, k, v, a.probs, B, Tq, Tk, Hq, Hkv, hd, scale);
            return { dq, dk, dv };
          };
          const ga = g(T),
            gb = g(N);
          assertClose(gb.dq, ga.dq, 1e-5, `dq ${tag}`);
          assertClose(gb.dk, ga.dk, 1e-5, `dk ${tag}`);
          assertClose(gb.dv, ga.dv, 1e-5, `dv ${tag}`);
        }
      }
    }
  },
);

test('attention native matches ts on a training-sized shape (parallel path)', { skip: native.skip }, () => {
  const rng = new Rng(24);
  const B = 2,
    T_ = 70,
    Hq = 8,
    Hkv = 2,
    hd = 64;
  const c: Case = { B, Tq: T_, Tk: T_, Hq, Hkv, hd, mask: makeMask(rng, B, T_, 'right') };
  const q = randF32(rng, B * T_ * Hq * hd, -2, 2),
    k = randF32(rng, B * T_ * Hkv * hd, -2, 2),
    v = randF32(rng, B * T_ * Hkv * hd);
  const a = run(T, q, k, v, c, 0.125),
    b = run(N, q, k, v, c, 0.125);
  assertClose(b.out, a.out, 1e-5, 'out');
  assertClose(b.probs, a.probs, 1e-5, 'probs');
  const dout = randF32(rng, q.length);
  const grads = (k2: Kernels) => {
    const dq = new Float32Array(q.length),
      dk = new Float32Array(k.length),
      dv = new Float32Array(v.length);
    k2.attentionBackward(dq, dk, dv, dout, q, k, v, a.probs, B, T_, T_, Hq, Hkv, hd, 0.125);
    return [dq, dk, dv];
  };
  const ga = grads(T),
    gb = grads(N);
  ['dq', 'dk', 'dv'].forEach((name, i) => assertClose(gb[i], ga[i], 1e-5, name));
});

test('a NaN in a query row makes that row NaN instead of being dropped silently (both backends)', () => {
  const rng = new Rng(25);
  const c: Case = { B: 1, Tq: 20, Tk: 20, Hq: 1, Hkv: 1, hd: 16, mask: null };
  const q = randF32(rng, 320),
    k = randF32(rng, 320),
    v = randF32(rng, 320);
  q[17 * 16 + 3] = NaN; // query row 17
  for (const kern of N ? [T, N] : [T]) {
    const { out } = run(kern, q, k, v, c, 0.25);
    for (let i = 0; i < 20; i++) {
      const row = out.subarray(i * 16, (i + 1) * 16);
      assert.equal(row.every(Number.isNaN), i === 17, `${kern.name}: row ${i}`);
      if (i !== 17) assert.ok(row.every(Number.isFinite), `${kern.name}: row ${i} finite`);
    }
  }
});

test('attention rejects Hq not a multiple of Hkv and short buffers', () => {
  const z = new Float32Array(64);
  for (const k of N ? [T, N] : [T]) {
    assert.throws(
      () => k.attentionForward(z, z, z, z, z, null, 1, 2, 2, 3, 2, 2, 1),
      /multiple of Hkv/,
      k.name,
    );
  }
  if (N)
    assert.throws(
      () => N.attentionForward(z, new Float32Array(3), z, z, z, null, 1, 2, 2, 1, 1, 2, 1),
      /probs has 3 elements/,
    );
});
