// docs/method.md step 5 (subtract trick, as train/lora-init.ts applies it) and step 7 (rank-2r plain adapter).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addDelta, plainAdapterFactors, subtractInit } from '../src/transfer/inject.js';
import { Rng } from '../src/engine/rng.js';
import { matmul64, maxAbsDiff, transpose64 } from './transfer-helpers.js';

function factors(n: number, m: number, r: number, seed: number) {
  const rng = new Rng(seed);
  return {
    B: rng.fillNormal(new Float32Array(n * r), 0, 0.3),
    A: rng.fillNormal(new Float32Array(r * m), 0, 0.3),
    n,
    m,
    r,
  };
}

test('Linear: W - scale·B·A, and adding scale·B·A back restores W to 1e-6', () => {
  const n = 24,
    m = 16,
    r = 4,
    scale = 0.5;
  const W = new Rng(1).fillNormal(new Float32Array(n * m));
  const f = factors(n, m, r, 2);
  const Wp = W.slice();
  subtractInit(Wp, f, scale, false);
  const BA = matmul64(f.B, f.A, n, r, m);
  assert.ok(
    maxAbsDiff(
      Wp,
      Array.from(W, (w, i) => w - scale * BA[i]),
    ) < 1e-6,
  );
  assert.notDeepEqual(Wp, W);
  const back = Wp.slice();
  addDelta(back, f, scale, false);
  assert.ok(maxAbsDiff(back, W) < 1e-6);
});

test('Embedding: the delta is (B·A)^T on the [V, d] weight, restored to 1e-6', () => {
  const V = 30,
    d = 8,
    r = 3,
    scale = 2;
  const E = new Rng(3).fillNormal(new Float32Array(V * d));
  const f = factors(d, V, r, 4); // factor layout [d, V]: B [d, r], A [r, V]
  const Ep = E.slice();
  subtractInit(Ep, f, scale, true);
  const deltaT = transpose64(matmul64(f.B, f.A, d, r, V), d, V); // [V, d]
  assert.ok(
    maxAbsDiff(
      Ep,
      Array.from(E, (e, i) => e - scale * deltaT[i]),
    ) < 1e-6,
  );
  const back = Ep.slice();
  addDelta(back, f, scale, true);
  assert.ok(maxAbsDiff(back, E) < 1e-6);
});

test('shape mismatches are refused', () => {
  const f = factors(4, 5, 2, 5);
  assert.throws(() => subtractInit(new Float32Array(19), f, 1, false), /expected 20/);
  assert.throws(() => subtractInit(new Float32Array(20), { ...f, r: 3 }, 1, false), /expected B \[4, 3\]/);
});

test('plain adapter: [B1 | B0]·[A1 ; -A0] = B1·A1 - B0·A0, so it loads on the untouched student', () => {
  const n = 9,
    m = 7,
    r = 3;
  const init = factors(n, m, r, 6),
    trained = factors(n, m, r, 7);
  const p = plainAdapterFactors(trained, init);
  assert.equal(p.r, 2 * r);
  const want = matmul64(trained.B, trained.A, n, r, m).map(
    (x, i) => x - matmul64(init.B, init.A, n, r, m)[i],
  );
  assert.ok(maxAbsDiff(matmul64(p.B, p.A, n, 2 * r, m), want) < 1e-6);
  // End to end: W_s' + B1·A1 (the trained model) equals W_s + plain delta, both at scale 1.
  const W = new Rng(8).fillNormal(new Float32Array(n * m));
  const trainedModel = W.slice();
  subtractInit(trainedModel, init, 1, false);
  addDelta(trainedModel, trained, 1, false);
  const plain = W.slice();
  addDelta(plain, p, 1, false);
  assert.ok(maxAbsDiff(trainedModel, plain) < 1e-5);
  assert.throws(() => plainAdapterFactors(trained, factors(n, m, r + 1, 9)), /init ones/);
});
