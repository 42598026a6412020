/**
 * src/eval/pyrandom.ts against CPython's random module. The expected values were printed by
 * /usr/bin/python3 (CPython 3.11) with the calls written next to them; they cover the int seeding
 * (one and two 32-bit key words), getrandbits, and both branches of sample() (the pool for small
 * populations, the rejection set for large ones), which is how lm-eval draws few-shot examples.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PyRandom } from '../src/eval/pyrandom.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

test("Random(seed).getrandbits(32) equals CPython's, for one- and two-word seeds", () => {
  const a = new PyRandom(0); // [r.getrandbits(32) for _ in range(3)]
  assert.deepEqual(
    [a.getrandbits(32), a.getrandbits(32), a.getrandbits(32)],
    [3626764237, 1654615998, 3255389356],
  );
  const b = new PyRandom(2 ** 33 + 5);
  assert.deepEqual([b.getrandbits(32), b.getrandbits(32)], [3185278367, 1209197118]);
});

test("sample() equals CPython's in both of its branches, draw after draw", () => {
  // r = random.Random(1234); [r.sample(range(7473), 5) for _ in range(4)]  (lm-eval's gsm8k shots)
  const r = new PyRandom(1234);
  assert.deepEqual(
    [0, 1, 2, 3].map(() => r.sample(range(7473), 5)),
    [
      [6374, 3610, 957, 61, 742],
      [7462, 6610, 4769, 286, 5501],
      [5677, 687, 806, 6279, 2905],
      [1939, 142, 252, 6461, 129],
    ],
  );
  // r = random.Random(7); r.sample(range(20), 6), r.sample(range(30), 10), r.sample('abcdefgh', 8), r.getrandbits(5), r.getrandbits(32)
  const s = new PyRandom(7);
  assert.deepEqual(s.sample(range(20), 6), [10, 4, 12, 1, 2, 13]);
  assert.deepEqual(s.sample(range(30), 10), [17, 3, 11, 18, 1, 16, 6, 25, 2, 13]);
  assert.deepEqual(s.sample([...'abcdefgh'], 8), ['g', 'a', 'b', 'h', 'd', 'e', 'c', 'f']);
  assert.equal(s.getrandbits(5), 20);
  assert.equal(s.getrandbits(32), 2694805173);
  // r = random.Random(2**40 + 7); r.sample(range(10), 3), r.sample(range(100), 30)
  const t = new PyRandom(2 ** 40 + 7);
  assert.deepEqual(t.sample(range(10), 3), [9, 7, 4]);
  assert.deepEqual(
    t.sample(range(100), 30),
    [
      78, 16, 66, 48, 97, 92, 46, 50, 56, 57, 47, 28, 91, 76, 23, 17, 67, 73, 20, 4, 32, 9, 89, 84, 98, 82, 3,
      72, 19, 6,
    ],
  );
  assert.throws(() => t.sample(range(3), 4), /k must be in \[0, 3\]/);
  assert.throws(() => new PyRandom(-1), /non-negative/);
});
