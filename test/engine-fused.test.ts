/**
 * Fused kernels other than attention: RMSNorm, RoPE (+ HF inv_freq), SwiGLU, embedding,
 * cross-entropy, AdamW. Each backward is checked against float64 central finite differences of the
 * TypeScript kernel run on Float64Array buffers; the native kernels are checked against the
 * TypeScript ones on odd shapes; fixed fixtures come from PyTorch 1.13 (generated once with
 * /usr/bin/python3; CI does not need torch).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/engine/rng.js';
import { tsKernels as T } from '../src/engine/ts/index.js';
import { ropeInvFreq } from '../src/engine/rope.js';
import { InputError } from '../src/errors.js';
import type { Kernels, RopeStyle } from '../src/engine/kernels.js';
import {
  asF32,
  assertClose,
  assertNear,
  checkGradient,
  dot,
  f32,
  nativeOrSkip,
  randF32,
  randF64,
} from './helpers/kernel-check.js';

const native = nativeOrSkip();
const N = native.k as Kernels;

// ------------------------------------------------------------------ RMSNorm
test('rmsnorm forward matches the formula on a hand example', () => {
  const x = f32([1, 2, 3, 4, -2, 0, 0, 2]);
  const w = f32([1, 0.5, 2, -1]);
  const out = new Float32Array(8),
    rstd = new Float32Array(2);
  T.rmsnormForward(out, rstd, x, w, 2, 4, 1e-5);
  const s0 = 1 / Math.sqrt(30 / 4 + 1e-5),
    s1 = 1 / Math.sqrt(8 / 4 + 1e-5);
  assertClose(rstd, [s0, s1], 1e-7, 'rstd');
  assertClose(out, [s0, s0, 6 * s0, -4 * s0, -2 * s1, 0, 0, -2 * s1], 1e-7, 'out');
});

test('rmsnorm backward matches float64 finite differences (dx overwritten, dw accumulated)', () => {
  const rng = new Rng(1);
  const rows = 3,
    dim = 7,
    eps = 1e-5;
  const x = randF64(rng, rows * dim),
    w = randF64(rng, dim, 0.5, 1.5),
    R = randF64(rng, rows * dim);
  const loss = (): number => {
    const out = new Float64Array(rows * dim),
      rstd = new Float64Array(rows);
    T.rmsnormForward(asF32(out), asF32(rstd), asF32(x), asF32(w), rows, dim, eps);
    return dot(out, R);
  };
  const out = new Float64Array(rows * dim),
    rstd = new Float64Array(rows);
  T.rmsnormForward(asF32(out), asF32(rstd), asF32(x), asF32(w), rows, dim, eps);
  const dx = new Float64Array(rows * dim).fill(123); // must be overwritten
  const dw = new Float64Array(dim).fill(0.25); // must be accumulated into
  T.rmsnormBackward(asF32(dx), asF32(dw), asF32(R), asF32(x), asF32(w), asF32(rstd), rows, dim);
  checkGradient(loss, x, dx, 'dx');
  checkGradient(
    loss,
    w,
    dw.map((g) => g - 0.25),
    'dw',
  );
});

test('rmsnorm native matches ts on odd shapes (dw null and accumulated)', { skip: native.skip }, () => {
  const rng = new Rng(2);
  for (const [rows, dim] of [
    [1, 5],
    [3, 33],
    [17, 64],
    [1, 1],
    [130, 257],
  ]) {
    const x = randF32(rng, rows * dim, -2, 2),
      w = randF32(rng, dim),
      dout = randF32(rng, rows * dim);
    const o1 = new Float32Array(rows * dim),
      r1 = new Float32Array(rows);
    const o2 = new Float32Array(rows * dim),
      r2 = new Float32Array(rows);
    T.rmsnormForward(o1, r1, x, w, rows, dim, 1e-6);
    N.rmsnormForward(o2, r2, x, w, rows, dim, 1e-6);
    assertClose(o2, o1, 1e-5, `out ${rows}x${dim}`);
    assertClose(r2, r1, 1e-5, `rstd ${rows}x${dim}`);
    const dx1 = new Float32Array(rows * dim),
      dx2 = new Float32Array(rows * dim).fill(NaN);
    const dw1 = randF32(new Rng(rows), dim),
      dw2 = dw1.slice();
    T.rmsnormBackward(dx1, dw1, dout, x, w, r1, rows, dim);
    N.rmsnormBackward(dx2, dw2, dout, x, w, r1, rows, dim);
    assertClose(dx2, dx1, 1e-5, `dx ${rows}x${dim}`);
    assertClose(dw2, dw1, 1e-5, `dw ${rows}x${dim}`);
    const dx3 = new Float32Array(rows * dim);
    N.rmsnormBackward(dx3, null, dout, x, w, r1, rows, dim);
    assertClose(dx3, dx1, 1e-5, `dx (dw null) ${rows}x${dim}`);
  }
});

// ------------------------------------------------------------------ RoPE
const ropeOf = (
  k: Kernels,
  x: Float32Array,
  pos: Int32Array,
  rows: number,
  H: number,
  hd: number,
  inv: Float32Array,
  style: RopeStyle,
  inverse = false,
): Float32Array => {
  const y = x.slice();
  k.rope(y, pos, rows, H, hd, inv, style, inverse);
  return y;
};

test('rope (rotate_half) matches HF apply_rotary_pos_emb from PyTorch', () => {
  // x[T=5, H=2, hd=8] = ((arange(80) % 7) - 3) / 4 at positions [0, 1, 7, 100, 4097], theta 1e4.
  const x = new Float32Array(80).map((_, i) => ((i % 7) - 3) / 4);
  const pos = Int32Array.from([0, 1, 7, 100, 4097]);
  const want = [
    -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, -0.75, -0.5,
    -0.7661787867546082, 0.07487506419420242, 0.2549874186515808, 0.5002497434616089, 0.19485902786254883,
    -0.7462531328201294, -0.4974750280380249, -0.24949988722801208, 0.6311032176017761, 0.2986677587032318,
    0.5024749636650085, 0.7499996423721313, -0.40522676706314087, -0.47254374623298645, -0.2449875771999359,
    0.0007499999483115971, 0.516968846321106, 0.5434755086898804, 0.7481632828712463, -0.7517316341400146,
    -0.21270447969436646, 0.13089828193187714, 0.052457135170698166, 0.24474391341209412, 0.5411977767944336,
    0.5736316442489624, -0.7656490206718445, -0.5034877061843872, 0.14001773297786713, 0.4831632375717163,
    0.19693061709403992, 0.4964877665042877, 0.64673912525177, 0.7653089165687561, -0.6908866167068481,
    -0.3236261010169983, -0.3797742426395416, 0.1982479691505432, -0.15058431029319763, 0.7212947607040405,
    -0.5201476812362671, 0.6915463209152222, -0.7661787867546082, 0.07487506419420242, 0.5953539609909058,
    -0.14752519130706787, 0.19485902786254883, -0.7462531328201294, -0.6450101137161255, -0.7898069620132446,
    -0.09669973701238632, -0.5525935292243958, 0.28976181149482727, -0.0347118079662323, 0.7437399625778198,
    0.08450080454349518, -0.500129222869873, 0.7212398052215576, -0.3123798370361328, -0.4927753210067749,
    0.6122668981552124, -0.20570147037506104, 0.46359342336654663, -0.2639554738998413,
  ];
  const inv = ropeInvFreq(8, 10000, null);
  assertClose(ropeOf(T, x, pos, 5, 2, 8, inv, 'half'), want, 2e-6, 'ts');
  if (N) assertClose(ropeOf(N, x, pos, 5, 2, 8, inv, 'half'), want, 2e-6, 'native');
});

test('rope (pairs) matches the llama2.c loop', () => {
  const rng = new Rng(3);
  const rows = 3,
    H = 2,
    hd = 6;
  const x = randF32(rng, rows * H * hd);
  const pos = Int32Array.from([5, 0, 31]);
  const inv = ropeInvFreq(hd, 10000, null);
  const want = x.slice();
  // llama2.c run.c: for i in 0..dim step 2: freq = 1/10000^((i % hs)/hs); val = pos*freq; rotate (v0, v1).
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < H * hd; i += 2) {
      const freq = 1 / Math.pow(10000, (i % hd) / hd);
      const val = pos[r] * freq;
      const o = r * H * hd + i,
        v0 = want[o],
        v1 = want[o + 1];
      want[o] = v0 * Math.cos(val) - v1 * Math.sin(val);
      want[o + 1] = v0 * Math.sin(val) + v1 * Math.cos(val);
    }
  }
  assertClose(ropeOf(T, x, pos, rows, H, hd, inv, 'pairs'), want, 1e-5, 'ts');
  if (N) assertClose(ropeOf(N, x, pos, rows, H, hd, inv, 'pairs'), want, 1e-5, 'native');
});

test('rope is orthogonal and inverse undoes it (both styles, float64)', () => {
  const rng = new Rng(4);
  for (const style of ['half', 'pairs'] as const) {
    const rows = 4,
      H = 3,
      hd = 10;
    const x = randF64(rng, rows * H * hd),
      y = randF64(rng, rows * H * hd);
    const pos = Int32Array.from([0, 3, 1000, 77777]);
    const inv = ropeInvFreq(hd, 500000, null);
    const rx = x.slice();
    T.rope(asF32(rx), pos, rows, H, hd, inv, style, false);
    // Inverse undoes forward.
    const back = rx.slice();
    T.rope(asF32(back), pos, rows, H, hd, inv, style, true);
    assertClose(back, x, 1e-13, `${style}: inverse(forward(x))`);
    // Orthogonal: <R x, y> = <x, R^T y> with R^T = the inverse rotation (so the backward is the inverse).
    const ry = y.slice();
    T.rope(asF32(ry), pos, rows, H, hd, inv, style, true);
    assertNear(dot(rx, y), dot(x, ry), 1e-12, `${style}: <Rx, y> vs <x, R^T y>`);
    // Norm preserved per head.
    for (let h = 0; h < rows * H; h++) {
      const a = x.subarray(h * hd, (h + 1) * hd),
        b = rx.subarray(h * hd, (h + 1) * hd);
      assertNear(dot(b, b), dot(a, a), 1e-13, `${style}: norm of head ${h}`);
    }
    // Position 0 is the identity; something moved elsewhere.
    assertClose(rx.subarray(0, H * hd), x.subarray(0, H * hd), 1e-15, `${style}: position 0`);
    assert.ok(Math.abs(rx[H * hd] - x[H * hd]) > 1e-6, `${style}: position 3 must rotate`);
  }
});

test(
  'rope native matches ts: both styles, odd row counts, arbitrary positions, headDim 2..128',
  { skip: native.skip },
  () => {
    const rng = new Rng(5);
    for (const style of ['half', 'pairs'] as const) {
      for (const [rows, H, hd] of [
        [1, 1, 2],
        [3, 2, 4],
        [17, 3, 6],
        [5, 4, 64],
        [7, 1, 128],
        [33, 6, 18],
        [301, 4, 64],
      ]) {
        const x = randF32(rng, rows * H * hd, -3, 3);
        const pos = Int32Array.from({ length: rows }, () => rng.int(200000) - 1000);
        const inv = ropeInvFreq(hd, rng.uniform() < 0.5 ? 10000 : 500000, null);
        for (const inverse of [false, true]) {
          assertClose(
            ropeOf(N, x, pos, rows, H, hd, inv, style, inverse),
            ropeOf(T, x, pos, rows, H, hd, inv, style, inverse),
            1e-5,
            `${style} rows=${rows} H=${H} hd=${hd} inverse=${inverse}`,
          );
        }
      }
    }
  },
);

test('rope refuses odd head dims and short invFreq (both backends)', () => {
  const x = new Float32Array(6),
    pos = new Int32Array(2);
  for (const k of N ? [T, N] : [T]) {
    assert.throws(() => k.rope(x, pos, 2, 1, 3, new Float32Array(2), 'half', false), /headDim/, k.name);
    assert.throws(() => k.rope(x, pos, 1, 1, 6, new Float32Array(2), 'half', false), /invFreq/, k.name);
  }
});

test('ropeInvFreq equals HF inv_freq bit for bit (default, linear, llama3)', () => {
  const bits = (a: Float32Array): number[] => Array.from(new Int32Array(a.buffer, a.byteOffset, a.length));
  // Int32 bit patterns of the float32 tensors computed by PyTorch 1.13 with the code of
  // transformers' _compute_default_rope_parameters / linear scaling / _compute_llama3_parameters.
  assert.deepEqual(
    bits(ropeInvFreq(64, 10000, null)),
    [
      1065353216, 1061157137, 1058010522, 1054337179, 1050798235, 1047712803, 1043732615, 1040747895,
      1036831949, 1033475085, 1030116802, 1026341397, 1023510243, 1019364175, 1016180025, 1012562930,
      1008981770, 1005959600, 1001931932, 998911607, 995049016, 991652109, 988353832, 984533390, 981668463,
      977573004, 974350870, 970790693, 967166816, 964208661, 960132947, 957076594,
    ],
  );
  assert.deepEqual(
    bits(ropeInvFreq(80, 1e6, { type: 'default', factor: 1 })),
    [
      1065353216, 1060453359, 1056984526, 1052092954, 1048615884, 1043732615, 1040247289, 1035372344,
      1031878742, 1027012141, 1023510243, 1018652002, 1015141789, 1010291936, 1006773387, 1001931932,
      998405030, 993571997, 990036724, 985212134, 981668463, 976852340, 973300249, 968492609, 964932085,
      960132947, 956563976, 951773353, 948195909, 943413829, 939827890, 935054384, 931459921, 926694998,
      923092000, 918335681, 914724136, 909976434, 906356314, 901617256,
    ],
  );
  assert.deepEqual(
    bits(ropeInvFreq(16, 10000, { type: 'linear', factor: 4 })),
    [1048576000, 1034021019, 1020054733, 1006733027, 992204554, 978271800, 964891247, 950389600],
  );
  const llama31 = {
    type: 'llama3',
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  };
  assert.deepEqual(
    bits(ropeInvFreq(128, 500000, llama31)),
    [
      1065353216, 1062243009, 1059709382, 1057645444, 1054963644, 1052224381, 1049992931, 1047774305,
      1044812720, 1042400160, 1040434848, 1037480348, 1034871981, 1032747160, 1030233703, 1027413636,
      1025116360, 1023079743, 1020030793, 1017547065, 1015523779, 1012729580, 1010044269, 1007856767,
      1005516623, 1002613366, 1000248322, 998321717, 995260192, 990772486, 984863005, 979408798, 973706706,
      967045384, 960179666, 952658054, 950223245, 948239807, 945335425, 942703001, 940558584, 938099311,
      935253236, 932934773, 930956739, 927879669, 925373035, 923331087, 920588484, 917878407, 915670731,
      913386368, 910456336, 908069481, 906125108, 903112712, 900532135, 898429952, 895853901, 893063879,
      890791079, 888686786, 885670320, 883213055,
    ],
  );
  assert.deepEqual(
    bits(ropeInvFreq(64, 500000, { ...llama31, factor: 32 })),
    [
      1065353216, 1059709382, 1054963644, 1049992931, 1044812720, 1040434848, 1034871981, 1030233703,
      1025116360, 1020030793, 1015523779, 1010044269, 1005516623, 1000248322, 995260192, 984164251, 971060768,
      952867063, 933446029, 928558209, 923781368, 918476020, 914179523, 908595819, 903811268, 898893515,
      893679120, 889347892, 883754919, 879076685, 874013863, 868893104,
    ],
  );
});

test('ropeInvFreq refuses unknown scaling types and incomplete llama3 settings by name', () => {
  assert.throws(
    () => ropeInvFreq(64, 10000, { type: 'yarn', factor: 4 }, 'm/config.json'),
    (e: unknown) => e instanceof InputError && /m\/config\.json/.test(e.message) && /"yarn"/.test(e.message),
  );
  assert.throws(() => ropeInvFreq(64, 10000, { type: 'dynamic', factor: 2 }), /"dynamic" is not supported/);
  assert.throws(
    () => ropeInvFreq(64, 10000, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4 }),
    /original_max_position_embeddings/,
  );
  assert.throws(() => ropeInvFreq(63, 10000, null), /even head dimension/);
  assert.throws(() => ropeInvFreq(64, 10000, { type: 'linear', factor: 0 }), /factor/);
});

// ------------------------------------------------------------------ SwiGLU
test('swiglu forward is silu(gate) * up and its backward matches finite differences', () => {
  const out = new Float64Array(3);
  T.swigluForward(asF32(out), asF32(Float64Array.from([0, 1, -2])), asF32(Float64Array.from([5, 2, 3])), 3);
  assertClose(out, [0, 2 / (1 + Math.exp(-1)), (3 * -2) / (1 + Math.exp(2))], 1e-15, 'forward');
  const rng = new Rng(6);
  const n = 23;
  const gate = randF64(rng, n, -6, 6),
    up = randF64(rng, n, -2, 2),
    R = randF64(rng, n);
  const loss = (): number => {
    const o = new Float64Array(n);
    T.swigluForward(asF32(o), asF32(gate), asF32(up), n);
    return dot(o, R);
  };
  const dg = new Float64Array(n).fill(9),
    du = new Float64Array(n).fill(9);
  T.swigluBackward(asF32(dg), asF32(du), asF32(R), asF32(gate), asF32(up), n);
  checkGradient(loss, gate, dg, 'dgate');
  checkGradient(loss, up, du, 'dup');
});

test('swiglu native matches ts, including saturated gates', { skip: native.skip }, () => {
  const rng = new Rng(7);
  for (const n of [1, 17, 64, 100003]) {
    const gate = randF32(rng, n, -12, 12),
      up = randF32(rng, n, -3, 3),
      dout = randF32(rng, n);
    if (n > 4) gate.set([-120, 120, -0, 1e-30]);
    const o1 = new Float32Array(n),
      o2 = new Float32Array(n);
    T.swigluForward(o1, gate, up, n);
    N.swigluForward(o2, gate, up, n);
    assertClose(o2, o1, 1e-5, `out n=${n}`);
    const g1 = new Float32Array(n),
      u1 = new Float32Array(n),
      g2 = new Float32Array(n),
      u2 = new Float32Array(n);
    T.swigluBackward(g1, u1, dout, gate, up, n);
    N.swigluBackward(g2, u2, dout, gate, up, n);
    assertClose(g2, g1, 1e-5, `dgate n=${n}`);
    assertClose(u2, u1, 1e-5, `dup n=${n}`);
    assert.ok(g2.every(Number.isFinite) && o2.every(Number.isFinite), 'saturated gates stay finite');
  }
});

// ------------------------------------------------------------------ embedding
test('embedding gathers rows and scatter-adds repeated ids (both backends)', () => {
  const table = f32([0, 1, 10, 11, 20, 21]); // 3 rows of dim 2
  const ids = Int32Array.from([2, 0, 2]);
  for (const k of N ? [T, N] : [T]) {
    const out = new Float32Array(6);
    k.embeddingForward(out, ids, table, 3, 2);
    assert.deepEqual(Array.from(out), [20, 21, 0, 1, 20, 21], k.name);
    const dtable = f32([1, 1, 1, 1, 1, 1]);
    k.embeddingBackward(dtable, f32([1, 2, 3, 4, 5, 6]), ids, 3, 2);
    assert.deepEqual(Array.from(dtable), [4, 5, 1, 1, 7, 9], `${k.name}: accumulates, repeated id sums`);
    assert.throws(
      () => k.embeddingForward(out, Int32Array.from([0, 3]), table, 2, 2),
      /ids\[1\] = 3/,
      k.name,
    );
    assert.throws(
      () => k.embeddingBackward(dtable, out, Int32Array.from([-1]), 1, 2),
      /ids\[0\] = -1/,
      k.name,
    );
  }
});

test('embedding native matches ts on odd shapes with many repeats', { skip: native.skip }, () => {
  const rng = new Rng(8);
  for (const [V, dim, n] of [
    [5, 5, 17],
    [33, 33, 3],
    [100, 64, 1],
    [50, 257, 300],
  ]) {
    const table = randF32(rng, V * dim);
    const ids = Int32Array.from({ length: n }, () => rng.int(V));
    const o1 = new Float32Array(n * dim),
      o2 = new Float32Array(n * dim);
    T.embeddingForward(o1, ids, table, n, dim);
    N.embeddingForward(o2, ids, table, n, dim);
    assert.deepEqual(o2, o1);
    const dout = randF32(rng, n * dim);
    const d1 = randF32(rng, V * dim),
      d2 = d1.slice();
    T.embeddingBackward(d1, dout, ids, n, dim);
    N.embeddingBackward(d2, dout, ids, n, dim);
    assertClose(d2, d1, 1e-6, `dtable V=${V} dim=${dim} n=${n}`);
  }
});

// ------------------------------------------------------------------ cross-entropy
test('crossEntropy equals log-sum-exp minus the target logit, ignoring targets < 0', () => {
  const logits = f32([1, 2, 3, 0, 0, 0, 1000, -1000, 1000]);
  const targets = Int32Array.from([2, -100, 0]);
  const rowLoss = new Float32Array(3).fill(7);
  const dl = new Float32Array(9).fill(7);
  const total = T.crossEntropy(logits, targets, 3, 3, dl, 0.5, rowLoss);
  const l0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)) - 3;
  const l2 = Math.log(2); // two logits of 1000: stable only with max-subtraction
  assertNear(total, l0 + l2, 1e-12, 'total');
  assertClose(rowLoss, [l0, 0, l2], 1e-7, 'rowLoss');
  const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
  assertClose(
    dl,
    [(0.5 * Math.exp(1)) / z, (0.5 * Math.exp(2)) / z, 0.5 * (Math.exp(3) / z - 1), 0, 0, 0, -0.25, 0, 0.25],
    1e-7,
    'dlogits',
  );
});

test('crossEntropy gradient matches finite differences of the returned sum (float64)', () => {
  const rng = new Rng(9);
  const rows = 4,
    V = 7;
  const logits = randF64(rng, rows * V, -3, 3);
  const targets = Int32Array.from([3, -1, 0, 6]);
  const loss = (): number => T.crossEntropy(asF32(logits), targets, rows, V, null, 1, null);
  const dl = new Float64Array(rows * V);
  const total = T.crossEntropy(asF32(logits), targets, rows, V, asF32(dl), 1, null);
  assertNear(total, loss(), 1e-15, 'same sum with and without dlogits');
  checkGradient(loss, logits, dl, 'dlogits');
  for (let c = 0; c < V; c++) assert.equal(dl[V + c], 0, 'ignored row has zero gradient');
});

test(
  'crossEntropy native matches ts: ignored targets, dscale, dlogits aliasing logits',
  { skip: native.skip },
  () => {
    const rng = new Rng(10);
    for (const [rows, V] of [
      [1, 5],
      [3, 33],
      [17, 64],
      [9, 50257],
    ]) {
      const logits = randF32(rng, rows * V, -8, 8);
      const targets = Int32Array.from({ length: rows }, (_, r) => (r % 3 === 1 ? -100 : rng.int(V)));
      const count = targets.filter((t) => t >= 0).length;
      const dscale = count ? 1 / count : 1;
      const res: { total: number; d: Float32Array; rl: Float32Array }[] = [];
      for (const k of [T, N]) {
        const d = new Float32Array(rows * V).fill(NaN),
          rl = new Float32Array(rows);
        const total = k.crossEntropy(logits, targets, rows, V, d, dscale, rl);
        assertNear(
          k.crossEntropy(logits, targets, rows, V, null, dscale, null),
          total,
          1e-12,
          `${k.name}: no-grad path`,
        );
        // In place: dlogits aliasing logits must give the same numbers.
        const inPlace = logits.slice();
        assertNear(
          k.crossEntropy(inPlace, targets, rows, V, inPlace, dscale, null),
          total,
          1e-12,
          `${k.name}: aliased total`,
        );
        assertClose(inPlace, d, 1e-7, `${k.name}: aliased dlogits rows=${rows} V=${V}`);
        res.push({ total, d, rl });
      }
      assertNear(res[1].total, res[0].total, 1e-5, `total rows=${rows} V=${V}`);
      assertClose(res[1].d, res[0].d, 1e-5, `dlogits rows=${rows} V=${V}`);
      assertClose(res[1].rl, res[0].rl, 1e-5, `rowLoss rows=${rows} V=${V}`);
    }
  },
);

test('crossEntropy rejects a target outside the vocabulary (both backends)', () => {
  for (const k of N ? [T, N] : [T]) {
    assert.throws(
      () => k.crossEntropy(new Float32Array(6), Int32Array.from([1, 3]), 2, 3, null, 1, null),
      /targets\[1\] = 3/,
      k.name,
    );
  }
});

// ------------------------------------------------------------------ AdamW
const adamwP0 = [0.5, -1.25, 2, 0.125, -0.75, 3.5];
const adamwGrad = (t: number): number[] =>
  Array.from({ length: 6 }, (_, i) => ((((i * 7 + t * 3) % 11) - 5) / 8) * (t === 3 ? 2 ** -30 : 1));

/** The torch.optim.AdamW formula written out independently, in float64. */
function adamwByHand(wd: number, steps: number): { p: number[]; m: number[]; v: number[] } {
  const lr = 1e-2,
    b1 = 0.9,
    b2 = 0.999,
    eps = 1e-8;
  const p = adamwP0.slice(),
    m = p.map(() => 0),
    v = p.map(() => 0);
  for (let t = 1; t <= steps; t++) {
    const g = adamwGrad(t);
    for (let i = 0; i < p.length; i++) {
      p[i] -= lr * wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mhat = m[i] / (1 - b1 ** t),
        vhat = v[i] / (1 - b2 ** t);
      p[i] -= (lr * mhat) / (Math.sqrt(vhat) + eps); // same as torch's form: sqrt(v)/sqrt(bc2) + eps
    }
  }
  return { p, m, v };
}

// torch 1.13: p = tensor(adamwP0, float32); AdamW([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd);
// 4 steps with the gradients of adamwGrad; parameters after each step, then exp_avg / exp_avg_sq.
const torchAdamw: Record<string, { steps: number[][]; m: number[]; v: number[] }> = {
  '0.1': {
    steps: [
      [
        0.5095000267028809, -1.2587499618530273, 1.9880000352859497, 0.13487499952316284, -0.7592499852180481,
        3.496500015258789,
      ],
      [
        0.5116539001464844, -1.2594062089920044, 1.977168321609497, 0.1414407193660736, -0.7579644322395325,
        3.485562324523926,
      ],
      [
        0.5132010579109192, -1.259627103805542, 1.9683549404144287, 0.14647884666919708, -0.7567996382713318,
        3.4763247966766357,
      ],
      [
        0.5185840725898743, -1.262107014656067, 1.9623159170150757, 0.15349796414375305, -0.7576678991317749,
        3.4721548557281494,
      ],
    ],
    m: [
      -0.05810000002384186, 0.052687495946884155, 0.03711249679327011, -0.08983749896287918,
      0.02094999887049198, 0.005374999716877937,
    ],
    v: [
      0.00032790645491331816, 0.0006704232073388994, 0.00028070344706065953, 0.0005308285471983254,
      0.0005612510140053928, 0.00020284389029257,
    ],
  },
  '0': {
    steps: [
      [
        0.5099999904632568, -1.2599999904632568, 1.9900000095367432, 0.13500000536441803, -0.7599999904632568,
        3.5,
      ],
      [
        0.5126633644104004, -1.2619149684906006, 1.9811562299728394, 0.1417005956172943, -0.7594736814498901,
        3.492558717727661,
      ],
      [
        0.5147221684455872, -1.2633953094482422, 1.9743199348449707, 0.1468801647424698, -0.7590668201446533,
        3.486806631088257,
      ],
      [
        0.5206183791160583, -1.2671347856521606, 1.9702492952346802, 0.15404576063156128, -0.7606918811798096,
        3.4861130714416504,
      ],
    ],
    m: [
      -0.05810000002384186, 0.052687495946884155, 0.03711249679327011, -0.08983749896287918,
      0.02094999887049198, 0.005374999716877937,
    ],
    v: [
      0.00032790645491331816, 0.0006704232073388994, 0.00028070344706065953, 0.0005308285471983254,
      0.0005612510140053928, 0.00020284389029257,
    ],
  },
};

for (const wd of [0.1, 0]) {
  test(`adamw follows torch.optim.AdamW over 4 steps (weight decay ${wd}, one step with tiny gradients)`, () => {
    for (const k of N ? [T, N] : [T]) {
      const p = f32(adamwP0),
        m = new Float32Array(6),
        v = new Float32Array(6);
      for (let t = 1; t <= 4; t++) {
        k.adamw(p, f32(adamwGrad(t)), m, v, 6, 1e-2, 0.9, 0.999, 1e-8, wd, t);
        assertClose(
          p,
          torchAdamw[String(wd)].steps[t - 1],
          1e-6,
          `${k.name}: torch parameters after step ${t}`,
        );
        assertClose(p, adamwByHand(wd, t).p, 1e-6, `${k.name}: hand formula after step ${t}`);
      }
      assertClose(m, torchAdamw[String(wd)].m, 1e-6, `${k.name}: exp_avg`);
      assertClose(v, torchAdamw[String(wd)].v, 1e-6, `${k.name}: exp_avg_sq`);
    }
    // Float64 buffers follow the float64 hand formula to rounding.
    const p = Float64Array.from(adamwP0),
      m = new Float64Array(6),
      v = new Float64Array(6);
    for (let t = 1; t <= 4; t++)
      T.adamw(
        asF32(p),
        asF32(Float64Array.from(adamwGrad(t))),
        asF32(m),
        asF32(v),
        6,
        1e-2,
        0.9,
        0.999,
        1e-8,
        wd,
        t,
      );
    const hand = adamwByHand(wd, 4);
    assertClose(p, hand.p, 1e-14, 'float64 parameters');
    assertClose(v, hand.v, 1e-14, 'float64 exp_avg_sq');
  });
}

test('adamw native matches ts on a large group and refuses step 0', { skip: native.skip }, () => {
  const rng = new Rng(11);
  const n = 100003;
  const p1 = randF32(rng, n),
    g = randF32(rng, n, -0.1, 0.1),
    m1 = randF32(rng, n, -0.01, 0.01),
    v1 = randF32(rng, n, 0, 1e-3);
  const p2 = p1.slice(),
    m2 = m1.slice(),
    v2 = v1.slice();
  T.adamw(p1, g, m1, v1, n, 3e-4, 0.9, 0.999, 1e-8, 0.01, 7);
  N.adamw(p2, g, m2, v2, n, 3e-4, 0.9, 0.999, 1e-8, 0.01, 7);
  assertClose(p2, p1, 1e-6, 'param');
  assertClose(m2, m1, 1e-6, 'm');
  assertClose(v2, v1, 1e-6, 'v');
  for (const k of [T, N])
    assert.throws(() => k.adamw(p1, g, m1, v1, 1, 1e-3, 0.9, 0.999, 1e-8, 0, 0), /step/, k.name);
});

test(
  'native kernels reject wrong buffer types and lengths instead of touching memory',
  { skip: native.skip },
  () => {
    assert.throws(
      () =>
        N.rmsnormForward(
          new Float32Array(3),
          new Float32Array(1),
          new Float32Array(4),
          new Float32Array(4),
          1,
          4,
          1e-5,
        ),
      /out has 3 elements/,
    );
    assert.throws(
      () =>
        N.swigluForward(
          new Float64Array(4) as unknown as Float32Array,
          new Float32Array(4),
          new Float32Array(4),
          4,
        ),
      /Float32Array/,
    );
    assert.throws(
      () =>
        N.adamw(
          new Float32Array(4),
          new Float32Array(4),
          new Float32Array(4),
          new Float32Array(4),
          5,
          1e-3,
          0.9,
          0.999,
          1e-8,
          0,
          1,
        ),
      /has 4 elements/,
    );
    assert.throws(
      () =>
        N.rope(
          new Float32Array(8),
          new Int32Array(2),
          2,
          1,
          4,
          new Float32Array(2),
          'weird' as RopeStyle,
          false,
        ),
      /style/,
    );
  },
);
