/**
 * HumanEval: the unbiased pass@k estimator against hand-computed and exact-binomial values, and the
 * real execution path: all 164 canonical solutions pass, wrong code fails, and loops, sleeps, runaway
 * allocation, forked children, floods of output and network access are stopped by the limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { networkIsolationAvailable, runPythonProgram } from '../src/eval/execute.js';
import {
  checkCompletions,
  humanevalProgram,
  humanevalPrompt,
  loadHumanEval,
  passAtK,
  runHumanEval,
} from '../src/eval/tasks/humaneval.js';
import { DATA, ScriptedLM, ctxFor } from './eval-helpers.js';

const PATH = join(DATA, 'humaneval', 'HumanEval.jsonl.gz');
const problems = loadHumanEval(PATH);
const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

/** Running (a killed child reparented to a PID 1 that does not reap may linger as a zombie: not running). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function choose(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let r = 1n;
  for (let i = 1; i <= k; i++) r = (r * BigInt(n - k + i)) / BigInt(i);
  return r;
}

test('pass@k: hand-computed values', () => {
  assert.equal(passAtK(10, 0, 1), 0);
  assert.equal(passAtK(10, 10, 1), 1);
  close(passAtK(10, 3, 1), 0.3); // 1 - C(7,1)/C(10,1)
  close(passAtK(10, 3, 5), 11 / 12); // 1 - C(7,5)/C(10,5) = 1 - 21/252
  assert.equal(passAtK(5, 2, 4), 1); // n - c < k
  close(passAtK(200, 1, 100), 0.5); // 1 - C(199,100)/C(200,100) = 1 - 100/200
  close(passAtK(20, 5, 10), 1 - 3003 / 184756);
  assert.throws(() => passAtK(5, 6, 1), /0 <= c <= n/);
  assert.throws(() => passAtK(5, 1, 6), /1 <= k <= n/);
});

test('pass@k: the stable product form equals 1 - C(n-c,k)/C(n,k) computed exactly', () => {
  for (let n = 1; n <= 30; n++) {
    for (let c = 0; c <= n; c++) {
      for (let k = 1; k <= n; k++) {
        const exact = 1 - Number((choose(n - c, k) * 10n ** 15n) / choose(n, k)) / 1e15;
        close(passAtK(n, c, k), exact, 1e-12);
      }
    }
  }
});

test('HumanEval data: 164 problems; prompts and the executed program', () => {
  assert.equal(problems.length, 164);
  assert.equal(problems[0].task_id, 'HumanEval/0');
  assert.equal(problems[0].entry_point, 'has_close_elements');
  const p = humanevalPrompt(problems[0]);
  assert.equal(p.prompt, problems[0].prompt);
  assert.deepEqual(p.stop, ['\nclass', '\ndef', '\n#', '\nif', '\nprint']);
  const prog = humanevalProgram(problems[0], '    return True\n');
  assert.ok(prog.startsWith(problems[0].prompt + '    return True\n\n' + problems[0].test));
  assert.ok(prog.endsWith('\ncheck(has_close_elements)\n'));
  const chat = humanevalPrompt(problems[0], 'tulu').prompt;
  assert.equal(
    chat,
    `<|user|>\nComplete the following python function.\n\n\n${problems[0].prompt}\n\n<|assistant|>\nHere is the completed function:\n\n\n${problems[0].prompt}`,
  );
});

test('all 164 canonical solutions pass through generation + execution: pass@1 = 1.0', async () => {
  const byPrompt = new Map(problems.map((p) => [p.prompt, p.canonical_solution]));
  const lm = new ScriptedLM('canonical', (r) => byPrompt.get(r.prompt)! + '\n\ndef unrelated():\n    pass\n');
  const events: string[] = [];
  const r = await runHumanEval(ctxFor(lm, { batchSize: 16, progress: (phase) => events.push(phase) }), {
    path: PATH,
    allowCodeExecution: true,
    exec: { concurrency: 2 },
  });
  const failed = r.samples.filter((s) => s.passed !== 1).map((s) => (s.doc as { task_id: string }).task_id);
  assert.deepEqual(failed, []);
  assert.deepEqual(
    r.metrics.map((m) => [m.name, m.value]),
    [['pass@1', 1]],
  );
  assert.ok(events.includes('generate') && events.includes('execute'));
  const exec = r.config.execution as { network: string; sandbox: string };
  assert.equal(exec.sandbox, 'bubblewrap');
  assert.match(exec.network, /cut off \(bubblewrap/);
});

test('a wrong completion fails; pass@k over several samples counts the right ones', async () => {
  const some = problems.slice(0, 3);
  const completions = some.map((p) => [
    p.canonical_solution,
    '    return None\n',
    '    raise ValueError("no")\n',
    p.canonical_solution,
  ]);
  const res = await checkCompletions(some, completions);
  for (const row of res)
    assert.deepEqual(
      row.map((x) => x.status),
      ['passed', 'failed', 'failed', 'passed'],
    );
  assert.match(res[0][1].stderrTail, /AssertionError/);
  close(passAtK(4, 2, 1), 0.5);
});

test('limits: an infinite loop and a sleep hit the wall-clock timeout; a busy loop hits the CPU limit', async () => {
  const loop = await runPythonProgram('while True:\n    pass\n', { timeoutMs: 1500 });
  assert.equal(loop.status, 'timeout');
  assert.equal(loop.signal, 'SIGKILL');
  const sleep = await runPythonProgram('import time\ntime.sleep(60)\n', { timeoutMs: 1000 });
  assert.equal(sleep.status, 'timeout');
  assert.ok(sleep.wallMs < 10_000);
  // CPU seconds run out long before the 30 s wall clock: killed by SIGXCPU/SIGKILL, counted as failed
  const cpu = await runPythonProgram('while True:\n    pass\n', { timeoutMs: 30_000, cpuSeconds: 1 });
  assert.equal(cpu.status, 'failed');
  assert.ok(cpu.signal === 'SIGXCPU' || cpu.signal === 'SIGKILL', `signal ${cpu.signal}`);
  assert.ok(cpu.wallMs < 20_000);
});

test('limits: unbounded allocation is stopped by the address-space limit and counted as failed', async () => {
  const r = await runPythonProgram('x = []\nwhile True:\n    x.append(bytearray(10**7))\n', {
    memoryBytes: 256 * 1024 * 1024,
    timeoutMs: 20_000,
  });
  assert.equal(r.status, 'failed');
  assert.match(r.stderr, /MemoryError/);
  // the same allocation through the HumanEval path counts as a failed sample
  const p = problems[0];
  const [[c]] = await checkCompletions(
    [p],
    [['    x = []\n    while True:\n        x.append(bytearray(10**7))\n']],
    { memoryBytes: 256 * 1024 * 1024 },
  );
  assert.equal(c.status, 'failed');
});

test('without the sandbox a forked child does not outlive the program; output beyond the cap is dropped; files go to a temp dir', async () => {
  const r = await runPythonProgram(
    'import os, sys, time\npid = os.fork()\nif pid == 0:\n    time.sleep(60)\n    os._exit(0)\nprint(pid)\nsys.stdout.flush()\n',
    // without the sandbox (whose PID namespace hides host pids; eval-sandbox.test.ts covers it): the process group is killed
    { timeoutMs: 5000, sandbox: false },
  );
  assert.equal(r.status, 'passed');
  const child = Number(r.stdout.trim());
  assert.ok(child > 0);
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(alive(child), false, `forked child ${child} still running`);

  const flood = await runPythonProgram(
    'import sys\nfor _ in range(20000):\n    sys.stdout.write("x" * 100)\n',
    { maxOutputBytes: 1000 },
  );
  assert.equal(flood.status, 'passed');
  assert.equal(flood.stdout.length, 1000);
  assert.equal(flood.truncated, true);

  // in the sandbox the working folder is a private tmpfs; without it, a host temp dir removed afterwards
  const cwd = await runPythonProgram('import os\nopen("f.txt", "w").write("x")\nprint(os.getcwd())\n');
  assert.equal(cwd.stdout.trim(), '/work');
  const host = await runPythonProgram('import os\nopen("f.txt", "w").write("x")\nprint(os.getcwd())\n', {
    sandbox: false,
  });
  const dir = host.stdout.trim();
  assert.ok(dir.startsWith(tmpdir()) && dir.includes('nuggets-exec-'), dir);
  assert.equal(existsSync(dir), false); // removed afterwards
});

test('network: cut off by the sandbox, or with unshare -rn without it where available (a local listener is unreachable)', async (t) => {
  const server = createServer((s) => s.end('hello'));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as { port: number }).port;
  const prog = `import socket\ns = socket.create_connection(("127.0.0.1", ${port}), timeout=3)\nprint(s.recv(5).decode())\n`;
  try {
    // without isolation the program reaches the listener (so the isolated check below can fail)
    const open = await runPythonProgram(prog, { sandbox: false, isolateNetwork: false });
    assert.equal(open.stdout.trim(), 'hello');
    assert.equal(open.network, 'none');
    const boxed = await runPythonProgram(prog);
    assert.equal(boxed.network, 'bwrap');
    assert.equal(boxed.status, 'failed');
    assert.match(boxed.stderr, /Network is unreachable|Connection refused|OSError/);
    if (!networkIsolationAvailable())
      return t.skip('unshare -rn is not permitted here; unsandboxed programs run with the network');
    const cut = await runPythonProgram(prog, { sandbox: false });
    assert.equal(cut.network, 'unshare');
    assert.equal(cut.status, 'failed');
    assert.match(cut.stderr, /Network is unreachable|Connection refused|OSError/);
  } finally {
    server.close();
  }
});

test('a missing interpreter is an error, not 164 failed samples', async () => {
  await assert.rejects(
    checkCompletions(problems.slice(0, 1), [[problems[0].canonical_solution]], {
      pythonPath: '/nonexistent/python3',
    }),
    /cannot execute Python programs with \/nonexistent\/python3/,
  );
});

test('without the explicit opt-in nothing is executed and no pass@k is reported', async () => {
  const marker = join(mkdtempSync(join(tmpdir(), 'eval-he-')), 'ran');
  const completion = `    open(${JSON.stringify(marker)}, "w").write("1")\n    return True\n`;
  const lm = new ScriptedLM('marker', () => completion);
  // unsandboxed, so that a run would leave the marker on the host
  const off = await runHumanEval(ctxFor(lm, { limit: 1 }), { path: PATH, exec: { sandbox: false } });
  assert.deepEqual(off.metrics, []);
  assert.equal(off.samples[0].execution, 'not run (code execution not enabled)');
  assert.equal(existsSync(marker), false);
  const on = await runHumanEval(ctxFor(lm, { limit: 1 }), {
    path: PATH,
    allowCodeExecution: true,
    exec: { sandbox: false },
  });
  assert.equal(existsSync(marker), true);
  assert.equal(on.metrics[0].name, 'pass@1');
});

test('several samples per problem: seeds differ per sample, pass@k for k <= n', async () => {
  const seeds: number[] = [];
  const lm = new ScriptedLM('mixed', (r) => {
    seeds.push(r.seed);
    return r.seed % 2 === 0 ? problems[0].canonical_solution : '    return None\n';
  });
  const r = await runHumanEval(ctxFor(lm, { limit: 1, seed: 10 }), {
    path: PATH,
    samples: 4,
    ks: [1, 2, 10],
    allowCodeExecution: true,
  });
  assert.deepEqual(seeds, [10, 11, 12, 13]);
  assert.deepEqual(
    r.metrics.map((m) => [m.name, m.value]),
    [
      ['pass@1', 0.5],
      ['pass@2', 1 - (1 - 2 / 3) * (1 - 2 / 4)],
    ],
  );
  assert.equal((r.config.generation as { temperature: number }).temperature, 0.8);
});
