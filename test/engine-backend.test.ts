import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { selectBackend } from '../src/engine/backend.js';
import { tsKernels } from '../src/engine/ts/index.js';

const probe = `
import { kernels } from './src/engine/backend.ts';
const k = kernels();
const C = new Float32Array(4);
k.gemm(false, false, 2, 2, 2, 1, Float32Array.from([1, 2, 3, 4]), 2, Float32Array.from([5, 6, 7, 8]), 2, 0, C, 2);
console.log(JSON.stringify({ name: k.name, C: [...C] }));
`;

function runProbe(env: Record<string, string>) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return { out: JSON.parse(r.stdout.trim().split('\n').pop()!), stderr: r.stderr };
}

test('NUGGETS_BACKEND=ts selects the TypeScript reference', () => {
  assert.equal(selectBackend('ts'), tsKernels);
  const { out } = runProbe({ NUGGETS_BACKEND: 'ts' });
  assert.deepEqual(out, { name: 'ts', C: [19, 22, 43, 50] });
});

test('an unknown backend name is refused by name', () => {
  assert.throws(() => selectBackend('cuda-please'), /"cuda-please" is not a backend/);
});

test('a missing addon falls back to ts with one warning that says why', () => {
  const { out, stderr } = runProbe({ NUGGETS_BACKEND: '', NUGGETS_NATIVE_PATH: '/nonexistent/addon.node' });
  assert.equal(out.name, 'ts');
  assert.deepEqual(out.C, [19, 22, 43, 50]);
  const warnings = stderr.split('\n').filter((l) => l.includes('native addon unavailable'));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /\/nonexistent\/addon\.node/);
});

test('NUGGETS_BACKEND=native refuses to run without the addon', () => {
  assert.throws(() => {
    const prev = process.env.NUGGETS_NATIVE_PATH;
    process.env.NUGGETS_NATIVE_PATH = '/nonexistent/addon.node';
    try {
      // loadNative caches its first answer; a fresh process is the honest check.
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
        env: { ...process.env, NUGGETS_BACKEND: 'native' },
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(r.stderr);
    } finally {
      if (prev === undefined) delete process.env.NUGGETS_NATIVE_PATH;
      else process.env.NUGGETS_NATIVE_PATH = prev;
    }
  }, /NUGGETS_BACKEND=native: the native addon cannot load: \/nonexistent\/addon\.node was not built/);
});
