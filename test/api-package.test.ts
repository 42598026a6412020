/**
 * The package as a user gets it: `npm pack`, installed into an empty project WITHOUT the network, then
 * the examples of docs/api.md compiled against the installed type declarations (tsc) and the first
 * one run with node. Its output is compared with the same calls made in this process on the source.
 *
 * Offline install: the consumer project gets a package-lock.json made of this repository's lockfile
 * (the runtime entries) plus the tarball, so `npm ci --offline` takes every dependency from npm's
 * cache by integrity, where the repository's own `npm ci` left it. The addon build (the package's
 * "install" script, node-gyp, about a minute) is skipped with --ignore-scripts; the test checks
 * instead that the tarball holds binding.gyp and every source it names, and the example runs on the
 * repository's built addon when there is one (NUGGETS_NATIVE_PATH), else on the TypeScript kernels,
 * like the in-process reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate, loadModel } from '../src/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  license: string;
  dependencies: Record<string, string>;
  bin: Record<string, string>;
  engines: Record<string, string>;
};

/** Newest modification time of the .ts files under a folder. */
function newestTs(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestTs(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

/** The ```ts blocks of docs/api.md, in order. */
function docExamples(): string[] {
  const md = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
  return [...md.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
}

const run = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) =>
  execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test('npm pack -> offline install -> the docs/api.md examples compile (tsc) and run (node) against the installed package', () => {
  // dist/ is built by `npm ci` ("prepare"); rebuild it here only when the sources are newer.
  const index = join(ROOT, 'dist', 'src', 'index.js');
  if (!existsSync(index) || statSync(index).mtimeMs < newestTs(join(ROOT, 'src')))
    run(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
      ROOT,
    );

  const tmp = mkdtempSync(join(tmpdir(), 'nuggets-pack-'));
  try {
    const packed = JSON.parse(
      run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], ROOT),
    ) as { filename: string; files: { path: string }[] }[];
    const tarball = packed[0].filename;
    const files = new Set(packed[0].files.map((f) => f.path));

    // What a user needs is in the tarball; tests, fixtures, sources and build-only data are not.
    for (const f of [
      'package.json',
      'README.md',
      'bin/nuggets.js',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/cli/run.js',
      'binding.gyp',
      'scripts/addon-missing.js',
      'docs/api.md',
      'experiments/demo.yaml',
      'zoo/student-tiny/model.safetensors',
      'tasks/facts/seeds.jsonl',
      'data/gsm8k/test.jsonl',
    ])
      assert.ok(files.has(f), `tarball lacks ${f}`);
    const gyp = readFileSync(join(ROOT, 'binding.gyp'), 'utf8');
    const sources = [...gyp.matchAll(/"(native\/[^"]+\.(?:cc|h))"/g)].map((m) => m[1]);
    assert.ok(sources.length > 0, 'binding.gyp names its sources');
    for (const s of sources) assert.ok(files.has(s), `tarball lacks ${s} (binding.gyp builds it)`);
    const stray = [...files].filter((f) =>
      /^(test|fixtures|src|bench|scripts\/(fixtures|interop)|results|data\/(tinystories|tinyshakespeare|stories260k))\/|\.map$/.test(
        f,
      ),
    );
    assert.deepEqual(stray, []);

    // The consumer project: the tarball plus the repository's runtime dependencies, pinned.
    const integrity =
      'sha512-' +
      createHash('sha512')
        .update(readFileSync(join(tmp, tarball)))
        .digest('base64');
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
    };
    const packages: Record<string, unknown> = {
      '': { name: 'consumer', dependencies: { nuggets: `file:${tarball}` } },
      'node_modules/nuggets': {
        version: pkg.version,
        resolved: `file:${tarball}`,
        integrity,
        hasInstallScript: true,
        license: pkg.license,
        dependencies: pkg.dependencies,
        bin: pkg.bin,
        engines: pkg.engines,
      },
    };
    for (const [k, v] of Object.entries(lock.packages))
      if (k !== '' && !v.dev && !v.devOptional) packages[k] = v;
    writeFileSync(
      join(tmp, 'package.json'),
      JSON.stringify({
        name: 'consumer',
        private: true,
        type: 'module',
        dependencies: { nuggets: `file:${tarball}` },
      }),
    );
    writeFileSync(
      join(tmp, 'package-lock.json'),
      JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }),
    );
    run('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], tmp);
    const installed = join(tmp, 'node_modules', 'nuggets');
    assert.equal(JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')).version, pkg.version);

    // The command is installed too, and runs the built CLI.
    assert.equal(run(join(tmp, 'node_modules', '.bin', 'nuggets'), ['--version'], tmp), `${pkg.version}\n`);

    // Compile every example of docs/api.md against the installed declarations.
    const examples = docExamples();
    assert.ok(examples.length >= 2, 'docs/api.md has its examples');
    examples.forEach((code, i) => writeFileSync(join(tmp, `example-${i + 1}.ts`), code));
    writeFileSync(
      join(tmp, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: true,
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          types: ['node'],
        },
        files: examples.map((_, i) => `example-${i + 1}.ts`),
      }),
    );
    run(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
      tmp,
    );

    // Run the first one where the package's zoo/ and tasks/ are (it names them relative to the cwd).
    const addon = join(ROOT, 'build', 'Release', 'nuggets_native.node');
    const env = {
      ...process.env,
      NUGGETS_NATIVE_PATH: existsSync(addon) ? addon : join(tmp, 'no-addon.node'),
    };
    const out = run(process.execPath, [join(tmp, 'example-1.js')], installed, env);
    const lines = Object.fromEntries(
      out
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)]),
    );

    // The same calls on the source, in this process.
    process.chdir(ROOT);
    const ref = loadModel('zoo/student-tiny');
    const g = generate({ model: 'zoo/student-tiny', prompt: 'Once upon a time', maxNewTokens: 8 });
    assert.ok(g.tokens > 0);
    assert.equal(lines.parameters, `${ref.info.parameters}, layers ${ref.model.config.numLayers}`);
    assert.equal(lines.text, JSON.stringify(g.text));
    assert.equal(lines.seeds, '2');
    assert.equal(lines.refused, 'zoo/no-such-model');
    assert.ok(existsSync(join(installed, 'sensitivity.safetensors')));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
