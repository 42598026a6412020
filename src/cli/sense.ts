/**
 * `nuggets sense`: docs/method.md step 1 on a teacher and a seed file -> a sensitivity safetensors and
 * a JSON summary beside it (src/transfer/sense/command.ts does the work).
 *
 *   nuggets sense --teacher <model> --seeds <jsonl> -o sens.safetensors [--shard i/n | --shard-from-env]
 *   nuggets sense merge <shard files...> -o sens.safetensors
 *
 * Options come from the `sense` / `sense-merge` schemas (flags and YAML alike), plus command-line
 * conveniences: `--shard-from-env` and `--shard-count` (docs/sharding.md). The work is the library's
 * `sense` and `senseMerge` (src/api/steps.ts).
 * Ctrl-C (SIGINT) or SIGTERM stops at the next step, removes the temporary per-layer files and
 * exits with status 130 without writing the output.
 */
import { CommanderError, InvalidArgumentError, Option, type Command } from 'commander';
import { addSchemaOptions, resolveOptions } from '../config/cli.js';
import { InputError } from '../errors.js';
import { SenseAborted } from '../transfer/sense/abort.js';
import { sense, senseMerge } from '../api/steps.js';

/** Aborts on SIGINT/SIGTERM while fn runs; an aborted run exits with 130 after cleaning up. */
async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(ac.signal);
  } catch (e) {
    if (e instanceof SenseAborted) {
      console.error('nuggets: interrupted; no output written');
      throw new CommanderError(130, 'nuggets.interrupted', 'interrupted');
    }
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerSense(program: Command): void {
  const cmd = program
    .command('sense')
    .description(
      "teacher sensitivity |theta * grad| per parameter over seed examples (docs/method.md step 1); 'sense merge' sums shards",
    );
  addSchemaOptions(cmd, 'sense');
  cmd
    .addOption(
      new Option(
        '--shard-from-env',
        'take the shard index from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID (Slurm array); --out must hold {i}',
      ),
    )
    .addOption(
      new Option(
        '--shard-count <integer>',
        "number of shards with --shard-from-env (Kubernetes: the Job's completions; Slurm: default SLURM_ARRAY_TASK_COUNT)",
      ).argParser(positiveInt),
    )
    .action(async (flags: Record<string, unknown>) => {
      const {
        shardFromEnv: fromEnv,
        shardCount,
        ...rest
      } = flags as { shardFromEnv?: boolean; shardCount?: number } & Record<string, unknown>;
      const opts = resolveOptions('sense', rest);
      await interruptible((signal) => sense({ ...opts, shardFromEnv: fromEnv, shardCount }, { signal }));
    });

  const merge = cmd
    .command('merge')
    .description('sum shard sensitivity files written by "sense --shard i/n" into one file')
    .argument('[shards...]', 'shard files (or --inputs)');
  addSchemaOptions(merge, 'sense-merge');
  merge.action((shards: string[], own: Record<string, unknown>, self: Command) => {
    // Commander lets the parent `sense` parse the options it shares with `merge` (-o, --out,
    // --dtype, --config) wherever they stand; take them from there, and refuse sense-only ones.
    const parent = self.parent!.opts() as Record<string, unknown>;
    const foreign = Object.keys(parent).filter(
      (key) => parent[key] !== undefined && !['out', 'dtype', 'config'].includes(key),
    );
    if (foreign.length > 0)
      throw new InputError(
        'sense merge',
        `takes shard files, -o/--out, --dtype and --config; not ${foreign.map((f) => `--${f.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`)}`).join(', ')}`,
      );
    const rest = { ...parent, ...own };
    if (shards.length > 0) rest.inputs = [...((rest.inputs as string[] | undefined) ?? []), ...shards];
    const opts = resolveOptions('sense-merge', rest);
    const s = senseMerge(opts);
    console.error(
      `sense merge: wrote ${opts.out} (${s.seeds.mergedFrom!.length} shards, ${s.loss.perSeed.length} seeds, mean answer loss ${s.loss.mean.toFixed(4)})`,
    );
  });
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer.');
  return n;
}
