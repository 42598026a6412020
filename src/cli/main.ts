/** The `nuggets` command line: one subcommand per step of docs/method.md, each registered by its own module. */
import { Command, CommanderError } from 'commander';
import { InputError } from '../errors.js';
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
import { registerDistillData } from './distill-data.js';
import { registerMerge } from './merge.js';
import { registerExperiment } from './experiment.js';
import { registerReport } from './report.js';
import { registerDemo } from './demo.js';
import { registerRandomModel } from './random-model.js';
import { version } from './version.js';

export function buildProgram(): Command {
  const program = new Command('nuggets')
    .description('Parametric knowledge transfer between language models: sense, extract, train, eval.')
    .version(version())
    .showHelpAfterError()
    .exitOverride();
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
  registerDistillData(program);
  registerMerge(program);
  registerExperiment(program);
  registerReport(program);
  registerDemo(program);
  registerRandomModel(program);
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
