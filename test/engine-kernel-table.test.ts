// The native addon is checked at load against the Kernels interface: exactly the functions of
// KERNEL_TABLE, with a clear error naming what is missing or extra.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KERNEL_NAMES } from '../src/engine/kernels.js';
import { checkAddon, loadNative, packageRoot } from '../src/engine/native.js';
import { tsKernels } from '../src/engine/ts/index.js';

const release = join(packageRoot(), 'build', 'Release');
const built = existsSync(join(release, 'nuggets_native.node'));

/** A stand-in addon: every kernel function of the TS backend, without its `name`. */
function fakeAddon(): Record<string, unknown> {
  const fns: Record<string, unknown> = { ...tsKernels };
  delete fns.name;
  return fns;
}

test('the kernel table lists every Kernels function, as the TS backend provides them', () => {
  const tsNames = Object.keys(tsKernels).filter((n) => n !== 'name');
  assert.deepEqual([...KERNEL_NAMES].sort(), tsNames.sort());
  assert.ok(KERNEL_NAMES.includes('gemm') && KERNEL_NAMES.includes('svd'));
});

test('an addon with exactly the kernel functions is accepted as the native backend', () => {
  const k = checkAddon(fakeAddon(), 'fake.node');
  assert.equal(k.name, 'native');
  for (const n of KERNEL_NAMES) assert.equal(k[n], (tsKernels as unknown as Record<string, unknown>)[n]);
  assert.deepEqual(Object.keys(k).sort(), ['name', ...KERNEL_NAMES].sort());
});

test('a missing kernel function is refused by name', () => {
  const addon = fakeAddon();
  delete addon.rope;
  assert.throws(
    () => checkAddon(addon, 'fake.node'),
    /^Error: fake\.node does not match the Kernels interface \(missing or not a function: rope\); rebuild it$/,
  );
});

test('a non-function export under a kernel name counts as missing', () => {
  const addon = fakeAddon();
  addon.topk = 42;
  assert.throws(() => checkAddon(addon, 'fake.node'), /missing or not a function: topk\)/);
});

test('an extra export is refused by name (bench helpers belong to the bench addon)', () => {
  const addon: Record<string, unknown> = { ...fakeAddon(), benchPeakFlops: () => 0 };
  delete addon.svd;
  assert.throws(
    () => checkAddon(addon, 'fake.node'),
    /missing or not a function: svd; not in the Kernels interface: benchPeakFlops\)/,
  );
});

test('something other than an object is refused', () => {
  assert.throws(() => checkAddon(undefined, 'fake.node'), /fake\.node does not export an object/);
  assert.throws(() => checkAddon(null, 'fake.node'), /fake\.node does not export an object/);
});

test('the built addon provides exactly the Kernels interface', { skip: !built && 'addon not built' }, () => {
  const n = loadNative();
  assert.equal(n.error, '');
  assert.equal(n.kernels?.name, 'native');
});

test(
  'loading the bench addon as the kernels fails at load, naming the missing functions',
  { skip: !existsSync(join(release, 'nuggets_bench.node')) && 'bench addon not built' },
  () => {
    const probe = `import { loadNative } from './src/engine/native.ts'; console.log(JSON.stringify(loadNative().error));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
      cwd: packageRoot(),
      env: { ...process.env, NUGGETS_NATIVE_PATH: join(release, 'nuggets_bench.node') },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const error = JSON.parse(r.stdout.trim().split('\n').pop()!) as string;
    assert.match(error, /nuggets_bench\.node does not match the Kernels interface/);
    assert.match(error, /missing or not a function: gemm, gemmStridedBatched, /);
    assert.match(error, /not in the Kernels interface: benchPeakFlops, benchSgemmDirect\)/);
  },
);
