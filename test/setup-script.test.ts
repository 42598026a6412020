/**
 * scripts/setup.sh (README command 1, .ci/run) on a stubbed PATH: apt-get, npm, id and sudo are shell
 * stubs that record how they were called, so the root / sudo / no-sudo paths are checked without
 * installing anything or needing another user.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const SCRIPT = join(ROOT, 'scripts', 'setup.sh');
const PACKAGES = 'build-essential python3 libopenblas-dev liblapacke-dev chromium bubblewrap';

/** Runs the script as uid `uid`, with or without a sudo on PATH; returns the recorded calls. */
function runSetup(uid: number, withSudo: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-setup-'));
  try {
    const bin = join(dir, 'bin');
    const log = join(dir, 'calls.log');
    mkdirSync(bin);
    // The real tools the script needs besides the stubs (found by absolute path, not on the test's PATH).
    for (const tool of ['dirname', 'env']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
    const stub = (name: string, body = '') =>
      writeFileSync(
        join(bin, name),
        `#!/bin/bash\necho "${name} $* [DEBIAN_FRONTEND=\${DEBIAN_FRONTEND:-} cwd=$PWD]" >> ${log}\n${body}\n`,
        { mode: 0o755 },
      );
    stub('id', `echo ${uid}`);
    stub('apt-get');
    stub('npm');
    if (withSudo) stub('sudo', 'exec "$@"');
    const r = spawnSync('/bin/bash', [SCRIPT], { env: { PATH: bin }, encoding: 'utf8' });
    const calls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
    return { code: r.status, stderr: r.stderr, calls: calls.map((c) => (c.startsWith('id ') ? 'id' : c)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const tail = `[DEBIAN_FRONTEND=noninteractive cwd=${ROOT}]`;

test('as root: apt-get directly (no sudo even when present), then npm ci in the repository', () => {
  for (const withSudo of [false, true]) {
    const r = runSetup(0, withSudo);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.calls, [
      'id',
      `apt-get update ${tail}`,
      `apt-get install -y ${PACKAGES} ${tail}`,
      `npm ci [DEBIAN_FRONTEND= cwd=${ROOT}]`,
    ]);
  }
});

test('as a user with sudo: apt-get through sudo, npm ci as the user', () => {
  const r = runSetup(1000, true);
  assert.equal(r.code, 0, r.stderr);
  const cwd = ROOT;
  assert.deepEqual(r.calls, [
    'id',
    `sudo env DEBIAN_FRONTEND=noninteractive apt-get update [DEBIAN_FRONTEND= cwd=${cwd}]`,
    `apt-get update ${tail}`,
    `sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y ${PACKAGES} [DEBIAN_FRONTEND= cwd=${cwd}]`,
    `apt-get install -y ${PACKAGES} ${tail}`,
    `npm ci [DEBIAN_FRONTEND= cwd=${cwd}]`,
  ]);
});

test('as a user without sudo: a clear message with the command to run as root, exit 1, nothing run', () => {
  const r = runSetup(1000, false);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not root and has no sudo/);
  assert.match(r.stderr, new RegExp(`apt-get update && apt-get install -y ${PACKAGES}`));
  assert.deepEqual(r.calls, ['id']);
});
