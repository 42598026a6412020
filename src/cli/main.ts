/** The `nuggets` command line: one subcommand per step of docs/method.md, each registered by its own module. */
import { Command, CommanderError } from 'commander';
import { InputError } from '../errors.js';
import { setComputeDtype } from '../engine/half.js';
import { registerInfo } from './info.js';
import { registerPretrain } from './pretrain.js';
import { registerInspect } from './inspect.js';
import { registerGenerate } from './generate.js';
import { registerConvert } from './convert.js';
import { registerEval } from './eval.js';
import { registerServe } from './serve.js';
import { registerSense } from './sense.js';
import { registerExtract } from './extract.js';
import { registerTrain } from './train.js';
import { registerMerge } from './merge.js';
import { registerExperiment } from './experiment.js';
import { registerReport } from './report.js';
import { registerDemo } from './demo.js';
import { registerRandomModel } from './random-model.js';
import { registerExport } from './export.js';
import { version } from './version.js';

export function buildProgram(): Command {
  const program = new Command('nuggets')
    .description('Parametric knowledge transfer between language models: sense, extract, train, eval.')
    .version(version())
    .showHelpAfterError()
    .exitOverride()
    .option(
      '--compute-dtype <dtype>',
      'activations in products with bf16/f16 weights: f32 (exact) or bf16 (faster, see docs/precision.md)',
    )
    .hook('preAction', (cmd) => {
      const d = cmd.opts<{ computeDtype?: string }>().computeDtype;
      if (d === undefined) return;
      if (d !== 'f32' && d !== 'bf16')
        throw new InputError('--compute-dtype', `"${d}" is not a compute dtype: use f32 or bf16`);
      setComputeDtype(d);
    });
  registerInfo(program);
  registerPretrain(program);
  registerInspect(program);
  registerGenerate(program);
  registerConvert(program);
  registerEval(program);
  registerServe(program);
  registerSense(program);
  registerExtract(program);
  registerTrain(program);
  registerMerge(program);
  registerExperiment(program);
  registerReport(program);
  registerDemo(program);
  registerRandomModel(program);
  registerExport(program);
  return program;
}

/** Runs the CLI; user errors print one clear line and exit 2, bugs print their stack and exit 1. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof InputError) {
      console.error(`nuggets: ${e.message}`);
      return 2;
    }
    console.error(e);
    return 1;
  }
}
