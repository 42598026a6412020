// Sharding `sense`: shard specs from the command line and from Kubernetes / Slurm environments,
// contiguous slices that partition the seeds, and `sense merge` == the unsharded run (stories260K
// teacher, 5 seeds, 3 shards), with mismatched or incomplete shard sets refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  mergeSensitivity,
  parseShard,
  readSummary,
  shardFromEnv,
  shardPath,
  shardRange,
} from '../src/transfer/shard.js';
import { senseCommand } from '../src/transfer/sense/command.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { resolveOptions } from '../src/config/cli.js';
import { main } from '../src/cli/main.js';

const TEACHER = join(import.meta.dirname, '..', 'data', 'stories260k', 'checkpoint_legacy.bin');

test('shard specs: "i/n", Kubernetes Indexed Job and Slurm array environments, clear refusals', () => {
  assert.deepEqual(parseShard('2/5'), { index: 2, count: 5 });
  assert.throws(() => parseShard('5/5'), /--shard: shard index 5 must be below the shard count 5/);
  assert.throws(() => parseShard('1-4'), /--shard: "1-4" is not "i\/n"/);
  assert.throws(() => parseShard('0/0'), /at least 1/);
  assert.deepEqual(shardFromEnv({ JOB_COMPLETION_INDEX: '3' }, 8), {
    index: 3,
    count: 8,
    from: 'JOB_COMPLETION_INDEX',
  });
  assert.throws(() => shardFromEnv({ JOB_COMPLETION_INDEX: '3' }), /pass --shard-count <completions>/);
  assert.throws(
    () => shardFromEnv({ JOB_COMPLETION_INDEX: '8' }, 8),
    /shard index 8 is not below the shard count 8/,
  );
  // --array=1-4 (1-based) and --array=0-6:2 (a step)
  assert.deepEqual(
    shardFromEnv({ SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '4' }),
    { index: 0, count: 4, from: 'SLURM_ARRAY_TASK_ID' },
  );
  assert.deepEqual(
    shardFromEnv({
      SLURM_ARRAY_TASK_ID: '6',
      SLURM_ARRAY_TASK_MIN: '0',
      SLURM_ARRAY_TASK_STEP: '2',
      SLURM_ARRAY_TASK_COUNT: '4',
    }),
    { index: 3, count: 4, from: 'SLURM_ARRAY_TASK_ID' },
  );
  assert.throws(
    () => shardFromEnv({ SLURM_ARRAY_TASK_ID: 'x' }),
    /SLURM_ARRAY_TASK_ID: environment variable is "x"/,
  );
  assert.throws(() => shardFromEnv({}), /neither JOB_COMPLETION_INDEX .* nor SLURM_ARRAY_TASK_ID/);
  assert.throws(() => shardFromEnv({ JOB_COMPLETION_INDEX: '0', SLURM_ARRAY_TASK_ID: '0' }), /both/);
  assert.equal(
    shardPath('out/sens-{i}-of-{n}.safetensors', { index: 2, count: 7 }),
    'out/sens-2-of-7.safetensors',
  );
});

test('shard slices are contiguous, disjoint, cover every seed and differ in size by at most one', () => {
  for (let total = 1; total <= 40; total++) {
    for (let n = 1; n <= total; n++) {
      let next = 0;
      const sizes: number[] = [];
      for (let i = 0; i < n; i++) {
        const { start, end } = shardRange(total, { index: i, count: n });
        assert.equal(start, next, `${total}/${n} shard ${i}`);
        next = end;
        sizes.push(end - start);
      }
      assert.equal(next, total);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1 && Math.min(...sizes) >= 1);
    }
  }
});

const SEEDS = [
  { prompt: 'Tell me about Lily.', answer: 'Lily was a little girl who loved to play in the park.' },
  { question: 'What did Tom see?', answer: 'Tom saw a big red ball in the garden.' },
  {
    messages: [
      { role: 'user', content: 'Say something kind.' },
      { role: 'assistant', content: 'You are a good friend.' },
    ],
  },
  { prompt: 'What is the cat doing?', answer: 'The cat is sleeping in the sun.' },
  { prompt: 'Where is the dog?', answer: 'The dog ran to the tree and barked.' },
];

test('sense merge of 3 shards equals the unsharded run; incomplete or mixed shard sets are refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nuggets-shard-'));
  try {
    const seeds = join(dir, 'seeds.jsonl');
    writeFileSync(seeds, SEEDS.map((s) => JSON.stringify(s)).join('\n') + '\n');
    const base = resolveOptions('sense', {
      teacher: TEACHER,
      seeds,
      out: join(dir, 'all.safetensors'),
      progress: false,
    });
    const quiet = { log: () => {} };
    const all = await senseCommand(base, quiet);
    const shards: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await senseCommand(
        { ...base, out: join(dir, 'sens-{i}-of-{n}.safetensors'), shardFromEnv: true },
        { ...quiet, env: { SLURM_ARRAY_TASK_ID: String(i), SLURM_ARRAY_TASK_COUNT: '3' } },
      );
      assert.equal(r.out, join(dir, `sens-${i}-of-3.safetensors`));
      assert.deepEqual(r.summary.seeds.shard, { index: i, count: 3 });
      assert.deepEqual(r.summary.seeds.indices, [[0], [1, 2]][i]);
      shards.push(r.out);
    }
    // the last shard through the command line, as a Kubernetes Indexed Job pod runs it
    process.env.JOB_COMPLETION_INDEX = '2';
    try {
      const code = await main([
        'node',
        'nuggets',
        'sense',
        '--teacher',
        TEACHER,
        '--seeds',
        seeds,
        '--shard-from-env',
        '--shard-count',
        '3',
        '-o',
        join(dir, 'sens-{i}-of-{n}.safetensors'),
        '--no-progress',
      ]);
      assert.equal(code, 0);
    } finally {
      delete process.env.JOB_COMPLETION_INDEX;
    }
    shards.push(join(dir, 'sens-2-of-3.safetensors'));
    // merged through the command line, listed out of order on purpose: merge sums in shard order
    const merged = join(dir, 'merged.safetensors');
    assert.equal(
      await main(['node', 'nuggets', 'sense', 'merge', shards[2], shards[0], shards[1], '-o', merged]),
      0,
    );
    // sense-only options are refused by merge
    assert.equal(
      await main([
        'node',
        'nuggets',
        'sense',
        'merge',
        ...shards,
        '-o',
        join(dir, 'x.safetensors'),
        '--num-seeds',
        '3',
      ]),
      2,
    );
    const m0 = openSafetensors(merged);
    const sum = readSummary(m0);
    m0.close();
    const a = openSafetensors(all.out),
      m = openSafetensors(merged);
    try {
      assert.deepEqual(m.names(), a.names());
      for (const name of a.names()) {
        const x = a.get(name),
          y = m.get(name);
        let worst = 0;
        for (let i = 0; i < x.length; i++)
          worst = Math.max(worst, Math.abs(x[i] - y[i]) / (Math.abs(x[i]) + 1e-12));
        assert.ok(worst < 1e-5, `${name}: merged differs from unsharded by ${worst} (relative)`);
      }
      const ms = readSummary(m);
      assert.deepEqual(
        ms.loss.perSeed.map((s) => s.index),
        [0, 1, 2, 3, 4],
      );
      for (let j = 0; j < 5; j++)
        assert.ok(Math.abs(ms.loss.perSeed[j].loss - all.summary.loss.perSeed[j].loss) < 1e-6);
      assert.ok(Math.abs(sum.total - all.summary.total) < 1e-5 * all.summary.total);
      for (let l = 0; l < 5; l++)
        assert.ok(Math.abs(sum.layers[l] - all.summary.layers[l]) < 1e-5 * all.summary.layers[l]);
      assert.equal(ms.seeds.shard, null);
      assert.equal(ms.seeds.mergedFrom!.length, 3);
      assert.ok(all.summary.tiedEmbeddings!.includes('added'));
    } finally {
      a.close();
      m.close();
    }

    assert.throws(
      () => mergeSensitivity([shards[0], shards[2]], join(dir, 'x.safetensors'), 'f32'),
      /shard\(s\) 1 of 3 are missing/,
    );
    assert.throws(
      () => mergeSensitivity([shards[0], shards[0], shards[1], shards[2]], join(dir, 'x.safetensors'), 'f32'),
      /are both shard 0/,
    );
    assert.throws(
      () => mergeSensitivity([all.out], join(dir, 'x.safetensors'), 'f32'),
      /is not a shard \(written without --shard\)/,
    );
    // a shard of another seed file
    const other = join(dir, 'other.jsonl');
    writeFileSync(
      other,
      SEEDS.slice()
        .reverse()
        .map((s) => JSON.stringify(s))
        .join('\n') + '\n',
    );
    const o1 = await senseCommand(
      { ...base, seeds: other, shard: '1/3', out: join(dir, 'other1.safetensors') },
      quiet,
    );
    assert.throws(
      () => mergeSensitivity([shards[0], o1.out, shards[2]], join(dir, 'x.safetensors'), 'f32'),
      /used another seed file than .* \(sha256 differs\)/,
    );
    const notSens = join(dir, 'plain.safetensors');
    writeFileSync(notSens, Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')]));
    assert.throws(
      () => mergeSensitivity([notSens], join(dir, 'x.safetensors'), 'f32'),
      /not a sensitivity file written by "nuggets sense"/,
    );
    // more shards than seeds, and an env shard without {i} in the output name
    await assert.rejects(
      senseCommand({ ...base, shard: '0/6' }, quiet),
      /shard 0\/6 of 5 seeds is empty; use at most 5 shards/,
    );
    await assert.rejects(
      senseCommand(
        { ...base, shardFromEnv: true, shardCount: 2 },
        { ...quiet, env: { JOB_COMPLETION_INDEX: '0' } },
      ),
      /has no \{i\}/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
