/**
 * The HumanEval sandbox against harmless hostile payloads: each one would pass (exit 0) if its
 * attack worked; in the sandbox each is contained, counted as not passed, and the run ends within
 * its deadline. Without bubblewrap execution is refused unless the caller opts out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPythonProgram, SandboxUnavailableError, type ExecResult } from '../src/eval/execute.js';
import { checkCompletions, loadHumanEval } from '../src/eval/tasks/humaneval.js';
import { DATA } from './eval-helpers.js';

const DEADLINE_MS = 3000;
/** The deadline plus the time to start and kill a sandbox on a loaded machine. */
const SLACK_MS = 2500;

/** Host processes whose command line contains `marker` (and are not zombies). */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (cmd.includes(marker) && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z') found.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

async function contained(program: string, opts = {}): Promise<ExecResult> {
  const r = await runPythonProgram(program, { timeoutMs: DEADLINE_MS, ...opts });
  assert.notEqual(r.status, 'passed', `the payload succeeded: ${r.stdout}${r.stderr}`);
  assert.ok(r.wallMs < DEADLINE_MS + SLACK_MS, `took ${r.wallMs} ms`);
  return r;
}

/** A sleep duration no other process uses, to find its processes by command line. */
let sleeps = 0;
const sleepMarker = () => `900.${process.pid}${++sleeps}`;

const settle = () => new Promise((res) => setTimeout(res, 300));

test(
  'sandbox: a detached child that holds the output pipe neither outlives nor delays the run',
  { timeout: 60_000 },
  async () => {
    const marker = sleepMarker();
    // the program ends at once (exit 0) while a new-session child keeps stdout open: the answer does not
    // wait for the pipe, and the child is gone afterwards
    const quick = await runPythonProgram(
      `import subprocess\nsubprocess.Popen(["sleep", "${marker}"], start_new_session=True)\n`,
      { timeoutMs: DEADLINE_MS },
    );
    assert.ok(quick.wallMs < DEADLINE_MS, `took ${quick.wallMs} ms`);
    await settle();
    assert.deepEqual(processesWith(marker), []);
    // the same child, and a program that then never ends: stopped at the deadline, counted failed
    const r = await contained(
      `import subprocess, time\nsubprocess.Popen(["sleep", "${marker}"], start_new_session=True)\ntime.sleep(1000)\n`,
    );
    assert.equal(r.status, 'timeout');
    await settle();
    assert.deepEqual(processesWith(marker), []);
  },
);

test(
  'sandbox: a fork of 50 sleeping children is stopped at the deadline and leaves nothing behind',
  { timeout: 60_000 },
  async () => {
    const marker = sleepMarker();
    await contained(
      `import os, subprocess, time\nfor _ in range(50):\n    subprocess.Popen(["sleep", "${marker}"], start_new_session=True)\ntime.sleep(1000)\n`,
    );
    await settle();
    assert.deepEqual(processesWith(marker), []);
  },
);

test(
  'sandbox: files outside the work folder can be neither read nor deleted',
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-files-'));
    const secret = join(dir, 'secret.txt');
    writeFileSync(secret, 'the secret');
    const read = await contained(`print(open(${JSON.stringify(secret)}).read())\n`);
    assert.doesNotMatch(read.stdout, /the secret/);
    await contained(`import os\nos.remove(${JSON.stringify(secret)})\n`);
    assert.equal(existsSync(secret), true);
    // nor the user's home, nor /etc
    await contained(
      `import os\nos.listdir(${JSON.stringify(process.env.HOME ?? '/root')})\nos.listdir("/etc")\n`,
    );
  },
);

test('sandbox: another process of the user cannot be killed', { timeout: 60_000 }, async () => {
  const sibling = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await contained(`import os, signal\nos.kill(${sibling.pid}, signal.SIGKILL)\n`);
    await settle();
    assert.equal(sibling.exitCode, null);
    assert.equal(sibling.signalCode, null);
  } finally {
    sibling.kill('SIGKILL');
  }
});

async function listen(server: Server, where: string | number): Promise<void> {
  await new Promise<void>((res) =>
    typeof where === 'string' ? server.listen(where, res) : server.listen(where, '127.0.0.1', res),
  );
}

test('sandbox: neither a Unix socket nor TCP to 127.0.0.1 can be reached', { timeout: 60_000 }, async () => {
  const sock = join(mkdtempSync(join(tmpdir(), 'sandbox-sock-')), 's.sock');
  const unix = createServer((s) => s.end('hello'));
  const tcp = createServer((s) => s.end('hello'));
  await listen(unix, sock);
  await listen(tcp, 0);
  const port = (tcp.address() as { port: number }).port;
  try {
    const u = await contained(
      `import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(${JSON.stringify(sock)})\nassert s.recv(5) == b"hello"\n`,
    );
    assert.doesNotMatch(u.stdout, /hello/);
    await contained(
      `import socket\ns = socket.create_connection(("127.0.0.1", ${port}), timeout=2)\nassert s.recv(5) == b"hello"\n`,
    );
  } finally {
    unix.close();
    tcp.close();
  }
});

test(
  "sandbox: the environment of nuggets and of the user's other processes (API keys) cannot be read",
  { timeout: 60_000 },
  async () => {
    process.env.NUGGETS_FAKE_JUDGE_KEY = 'sk-not-a-real-key';
    const holder = spawn('sleep', ['30'], {
      stdio: 'ignore',
      env: { PATH: process.env.PATH, NUGGETS_FAKE_JUDGE_KEY: 'sk-not-a-real-key' },
    });
    try {
      await contained(
        [
          'import os',
          'found = "sk-not-a-real-key" in str(dict(os.environ))',
          'for d in os.listdir("/proc"):',
          '    try:',
          '        found = found or b"sk-not-a-real-key" in open("/proc/%s/environ" % d, "rb").read()',
          '    except Exception:',
          '        pass',
          'assert found',
          '',
        ].join('\n'),
        // where `unshare -rn` is unavailable (the unsandboxed fallback then keeps the user namespace)
        { isolateNetwork: false },
      );
    } finally {
      holder.kill('SIGKILL');
      delete process.env.NUGGETS_FAKE_JUDGE_KEY;
    }
  },
);

test('sandbox: memory and disk bombs are stopped and counted failed', { timeout: 60_000 }, async () => {
  const mem = await contained('x = []\nwhile True:\n    x.append(bytearray(10**7))\n', {
    memoryBytes: 256 * 1024 * 1024,
  });
  assert.equal(mem.status, 'failed');
  // many files each under the per-file limit: the private tmpfs fills up (64 MB here), the host disk does not
  const disk = await contained(
    'for i in range(100):\n    with open("f%d" % i, "wb") as f:\n        f.write(b"x" * (4 << 20))\n',
    { fileSizeBytes: 16 << 20 },
  );
  assert.equal(disk.status, 'failed');
  assert.match(disk.stderr, /No space left|File too large|OSError/);
});

test(
  'sandbox: the hostile payloads as HumanEval completions all count as failed within the deadline',
  { timeout: 60_000 },
  async () => {
    const [p] = loadHumanEval(join(DATA, 'humaneval', 'HumanEval.jsonl.gz'));
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-he-'));
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'x');
    const payloads = [
      `    import subprocess, time\n    subprocess.Popen(["sleep", "infinity"], start_new_session=True)\n    time.sleep(1000)\n`,
      `    import os\n    os.remove(${JSON.stringify(victim)})\n    return True\n`,
      `    import os\n    return os.listdir("/root")\n`,
    ];
    const started = Date.now();
    const [rows] = await checkCompletions([p], [payloads], { timeoutMs: DEADLINE_MS });
    assert.deepEqual(
      rows.map((r) => r.status),
      ['timeout', 'failed', 'failed'],
    );
    assert.ok(rows.every((r) => r.sandbox === 'bwrap'));
    assert.ok(Date.now() - started < 3 * (DEADLINE_MS + SLACK_MS));
    assert.equal(existsSync(victim), true);
  },
);

test(
  'no sandbox available: execution is refused with one clear message unless opted out',
  { timeout: 60_000 },
  async () => {
    const path = process.env.PATH;
    // a PATH without bwrap makes the probe fail; the probe result is cached per process, so run it in a child
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `import("./src/eval/execute.ts").then(async (m) => {
        try { await m.runPythonProgram("print(1)"); console.log("ran"); }
        catch (e) { console.log(e.name + ": " + e.message); }
        const r = await m.runPythonProgram("print(1)", { sandbox: false });
        console.log("opt-out " + r.status);
      })`,
      ],
      { env: { ...process.env, PATH: '/nonexistent' }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    await new Promise((res) => child.on('close', res));
    process.env.PATH = path;
    assert.match(
      out,
      /SandboxUnavailableError: code execution: no sandbox for model-written code: .*--no-sandbox/,
    );
    assert.match(out, /opt-out passed/);
    assert.ok(SandboxUnavailableError.prototype instanceof Error);
  },
);
