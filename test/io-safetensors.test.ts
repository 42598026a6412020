import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { openSafetensors, writeSafetensors, writeSafetensorsLazy } from '../src/io/safetensors.js';
import { InputError } from '../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'nuggets-st-'));
let k = 0;
const tmp = (bytes: Uint8Array) => {
  const p = join(dir, `f${k++}.safetensors`);
  writeFileSync(p, bytes);
  return p;
};

/** A file from a header object and data bytes, exactly as the format lays it out. */
function build(header: string, data: Uint8Array = new Uint8Array(0)): Buffer {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}
const f32bytes = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

test('writer output is byte-exact: u64 length, JSON header space-padded to 8, contiguous data', () => {
  const p = join(dir, 'golden.safetensors');
  writeSafetensors(p, [
    { name: 'a', shape: [2], data: Float32Array.of(1, 2) },
    { name: '7', shape: [1, 1], data: Float32Array.of(-0.5), dtype: 'BF16' },
  ]);
  const header =
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"7":{"dtype":"BF16","shape":[1,1],"data_offsets":[8,10]}}';
  assert.equal(header.length, 111);
  const want = Buffer.concat([
    Buffer.from([112, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from(header + ' '),
    Buffer.from(f32bytes(1, 2)),
    Buffer.from([0x00, 0xbf]), // bf16(-0.5) = 0xBF00
  ]);
  assert.deepEqual(readFileSync(p), want);
  const r = openSafetensors(p);
  assert.deepEqual(r.names(), ['a', '7']); // header order, not JS object order
  assert.deepEqual(r.info('7'), { dtype: 'BF16', shape: [1, 1] });
  assert.deepEqual([...r.get('7')], [-0.5]);
  r.close();
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.tmp')),
    [],
  );
});

test('round trips: F32 exact, F16 and BF16 within their rounding, metadata kept', () => {
  const n = 1000;
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 4));
  const p = join(dir, 'rt.safetensors');
  writeSafetensors(
    p,
    [
      { name: 'x32', shape: [10, 100], data },
      { name: 'x16', shape: [n], data, dtype: 'F16' },
      { name: 'xb16', shape: [n], data, dtype: 'BF16' },
      { name: 'empty', shape: [0, 3], data: new Float32Array(0) },
      { name: 'scalar', shape: [], data: Float32Array.of(3) },
    ],
    { format: 'pt', note: 'hi' },
  );
  const r = openSafetensors(p);
  assert.deepEqual(r.metadata, { format: 'pt', note: 'hi' });
  assert.deepEqual(r.get('x32'), data);
  const h = r.get('x16'),
    b = r.get('xb16');
  for (let i = 0; i < n; i++) {
    const x = data[i];
    if (Math.abs(x) >= 6.2e-5) assert.ok(Math.abs(h[i] - x) <= Math.abs(x) * 2 ** -11, `f16 ${x} -> ${h[i]}`);
    else assert.ok(Math.abs(h[i] - x) <= 2 ** -25, `f16 subnormal ${x} -> ${h[i]}`);
    assert.ok(Math.abs(b[i] - x) <= Math.abs(x) * 2 ** -8, `bf16 ${x} -> ${b[i]}`);
  }
  // Writing the read-back values again is lossless (they are representable).
  const p2 = join(dir, 'rt2.safetensors');
  writeSafetensors(p2, [
    { name: 'x16', shape: [n], data: h, dtype: 'F16' },
    { name: 'xb16', shape: [n], data: b, dtype: 'BF16' },
  ]);
  const r2 = openSafetensors(p2);
  assert.deepEqual(r2.get('x16'), h);
  assert.deepEqual(r2.get('xb16'), b);
  assert.deepEqual(r.get('empty').length, 0);
  assert.deepEqual([...r.get('scalar')], [3]);
  r.close();
  r2.close();
});

test('other dtypes are readable raw and converted by value', () => {
  const i64 = new BigInt64Array([-3n, 5n]);
  const f64 = Float64Array.of(0.25, -1e10);
  const parts = [
    new Uint8Array(i64.buffer),
    new Uint8Array(f64.buffer),
    Uint8Array.of(0, 1, 7),
    Uint8Array.of(0x38, 0xc0, 0x7f),
    Uint8Array.of(0x3c, 0x7c),
  ];
  const header = JSON.stringify({
    i: { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
    d: { dtype: 'F64', shape: [2], data_offsets: [16, 32] },
    b: { dtype: 'BOOL', shape: [3], data_offsets: [32, 35] },
    e4: { dtype: 'F8_E4M3', shape: [3], data_offsets: [35, 38] },
    e5: { dtype: 'F8_E5M2', shape: [2], data_offsets: [38, 40] },
  });
  const r = openSafetensors(tmp(build(header, Buffer.concat(parts))));
  assert.deepEqual([...r.getRaw('b')], [0, 1, 7]);
  assert.deepEqual([...r.get('i')], [-3, 5]);
  assert.deepEqual([...r.get('d')], [0.25, Math.fround(-1e10)]);
  assert.deepEqual([...r.get('b')], [0, 1, 1]);
  // e4m3fn: 0x38 = 1.0, 0xC0 = -2.0, 0x7F = NaN; e5m2: 0x3C = 1.0, 0x7C = +Inf.
  const e4 = r.get('e4');
  assert.deepEqual([e4[0], e4[1]], [1, -2]);
  assert.ok(Number.isNaN(e4[2]));
  assert.deepEqual([...r.get('e5')], [1, Infinity]);
  r.close();
});

function rejects(bytes: Uint8Array, re: RegExp, tensor?: string) {
  const p = tmp(bytes);
  assert.throws(
    () => openSafetensors(p).close(),
    (e: unknown) => {
      assert.ok(e instanceof InputError, `not an InputError: ${e}`);
      assert.ok(e.message.startsWith(p), e.message);
      assert.match(e.message, re);
      if (tensor) assert.ok(e.message.includes(`"${tensor}"`), e.message);
      return true;
    },
  );
}

test('bad files: each a clear InputError naming the file (and the tensor)', () => {
  const ok = JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } });
  const good = build(ok, f32bytes(1, 2));
  assert.deepEqual([...openSafetensors(tmp(good)).get('w')], [1, 2]);
  rejects(good.subarray(0, 5), /too short/);
  rejects(good.subarray(0, good.length - 1), /run past the end of the data .*truncated/, 'w');
  rejects(good.subarray(0, 20), /header length \d+ runs past the end/);
  const huge = Buffer.from(good);
  huge.writeBigUInt64LE(0xffffffffffffffffn, 0);
  rejects(huge, /header length 18446744073709551615 runs past/);
  rejects(build('{"w": nope}', f32bytes(1)), /header is not JSON/);
  rejects(build('[1,2]'), /not a JSON object/);
  rejects(build('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}\xff'), /not JSON|UTF-8/);
  rejects(
    Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]),
    /not valid UTF-8/,
  );
  rejects(
    build(JSON.stringify({ w: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }), f32bytes(1, 2)),
    /unknown dtype "Q4"/,
    'w',
  );
  rejects(
    build(JSON.stringify({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }), f32bytes(1, 2)),
    /hold 8 bytes but F32 x \[3\] needs 12/,
    'w',
  );
  rejects(
    build(JSON.stringify({ w: { dtype: 'F16', shape: [2], data_offsets: [0, 8] } }), f32bytes(1, 2)),
    /needs 4/,
    'w',
  );
  rejects(
    build(JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }), f32bytes(1, 2)),
    /end before they begin/,
    'w',
  );
  rejects(
    build(JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), f32bytes(1, 2)),
    /past the end/,
    'w',
  );
  rejects(
    build(JSON.stringify({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }), f32bytes(1, 2)),
    /not a list of non-negative integers/,
    'w',
  );
  rejects(
    build(JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0.5, 8] } }), f32bytes(1, 2)),
    /data_offsets/,
    'w',
  );
  rejects(
    build(JSON.stringify({ w: { shape: [2], data_offsets: [0, 8] } }), f32bytes(1, 2)),
    /dtype is missing/,
    'w',
  );
  rejects(build(JSON.stringify({ w: 3 }), f32bytes(1, 2)), /not an object/, 'w');
  rejects(
    build(
      JSON.stringify({
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      }),
      f32bytes(1, 2, 3),
    ),
    /overlaps tensor "a"/,
    'b',
  );
  rejects(
    build(
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
      f32bytes(1, 2),
    ),
    /duplicate tensor name "a"/,
  );
  rejects(
    build('{"a":{"dtype":"F32","dtype":"I8","shape":[4],"data_offsets":[0,4]}}', f32bytes(1)),
    /duplicate key "dtype"/,
  );
  rejects(build(JSON.stringify({ __metadata__: { a: 1 } })), /__metadata__ value for "a" is not a string/);
  rejects(build('{"a":' + '['.repeat(200) + ']'.repeat(200) + '}'), /nested too deeply/);
});

test('writer refuses duplicate names and shape/data mismatches', () => {
  const p = join(dir, 'bad.safetensors');
  assert.throws(
    () =>
      writeSafetensors(p, [
        { name: 'a', shape: [1], data: Float32Array.of(1) },
        { name: 'a', shape: [1], data: Float32Array.of(2) },
      ]),
    /duplicate tensor name "a"/,
  );
  assert.throws(
    () => writeSafetensors(p, [{ name: 'a', shape: [2, 2], data: Float32Array.of(1) }]),
    /has 1 values but shape \[2, 2\] needs 4/,
  );
});

test('fuzz: random bytes and mutated valid files give InputError or a valid reader, never a crash or hang', () => {
  const valid = (() => {
    const p = join(dir, 'seed.safetensors');
    writeSafetensors(
      p,
      [
        { name: 'a', shape: [3, 2], data: Float32Array.of(1, 2, 3, 4, 5, 6) },
        { name: 'b', shape: [4], data: Float32Array.of(7, 8, 9, 10), dtype: 'F16' },
      ],
      { format: 'pt' },
    );
    return readFileSync(p);
  })();
  const fuzzPath = join(dir, 'fuzz.safetensors');
  const attempt = (bytes: Uint8Array) => {
    writeFileSync(fuzzPath, bytes);
    try {
      const r = openSafetensors(fuzzPath);
      try {
        for (const n of r.names()) {
          const { shape } = r.info(n);
          const v = r.get(n);
          assert.equal(
            v.length,
            shape.reduce((a, b) => a * b, 1),
          );
        }
      } finally {
        r.close();
      }
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), attempt), { numRuns: 300, seed: 1 });
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.nat(valid.length),
      (edits, cut) => {
        const b = Buffer.from(valid);
        for (const [i, v] of edits) b[i] = v;
        attempt(b.subarray(0, cut === valid.length ? b.length : Math.max(cut, 0)));
        attempt(b);
      },
    ),
    { numRuns: 500, seed: 2 },
  );
  // Header text mutations that keep it JSON-ish: swap characters inside the header.
  const hlen = Number(valid.readBigUInt64LE(0));
  fc.assert(
    fc.property(fc.nat(hlen - 1), fc.constantFrom(...'0123456789[]{}",:- e.'.split('')), (i, ch) => {
      const b = Buffer.from(valid);
      b[8 + i] = ch.charCodeAt(0);
      attempt(b);
    }),
    { numRuns: 500, seed: 3 },
  );
});

test('raw entries of any dtype are copied unchanged (lazy writer)', () => {
  const p = join(dir, 'raw.safetensors');
  const i64 = new Uint8Array(new BigInt64Array([1n, -2n, 3n]).buffer);
  writeSafetensorsLazy(p, [
    { name: 'pos', shape: [3], dtype: 'I64', loadRaw: () => i64 },
    { name: 'w', shape: [2], load: () => Float32Array.of(0.5, 4), dtype: 'F16' },
  ]);
  const r = openSafetensors(p);
  assert.deepEqual(r.info('pos'), { dtype: 'I64', shape: [3] });
  assert.deepEqual(r.getRaw('pos'), i64);
  assert.deepEqual([...r.get('pos')], [1, -2, 3]);
  assert.deepEqual([...r.get('w')], [0.5, 4]);
  r.close();
  assert.throws(
    () => writeSafetensorsLazy(p, [{ name: 'x', shape: [2], dtype: 'I64', loadRaw: () => i64 }]),
    /has 24 bytes but I64 x \[2\] needs 16/,
  );
  assert.throws(
    () => writeSafetensorsLazy(p, [{ name: 'x', shape: [1], dtype: 'Q4', loadRaw: () => i64 }]),
    /cannot be written as dtype Q4/,
  );
});
