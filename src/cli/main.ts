/**
 * The `nuggets` command line: one subcommand per step of docs/method.md, each registered by its own
 * module and each a thin layer over the library function of its step (src/api/steps.ts).
 *
 * Conventions kept here for every command: `-o/--out` names what a command writes; a parser mistake
 * is one line, "nuggets: error: <what> (see 'nuggets <cmd> --help')", exit status 2, like the
 * commands' own input checks (InputError); `--help` opens with a one-line synopsis and ends with an
 * example (SYNOPSIS below: a new command adds its entry).
 */
import { Command, CommanderError } from 'commander';
import { InputError } from '../errors.js';
import { setComputeDtype } from '../engine/half.js';
import { systemErrorText } from '../io/atomic.js';
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
import { registerExport } from './export.js';
import { version } from './version.js';
import { rememberArgs } from './argv.js';

/** Synopsis and example of each command (`nuggets <cmd> --help`). */
const SYNOPSIS: Record<string, { usage: string; example: string }> = {
  info: { usage: '[--json]', example: 'nuggets info --json' },
  pretrain: {
    usage:
      '--data <text> --tokenizer <file> (--hidden-size <n> ... | --model-config <json>) -o <folder> [options]',
    example:
      'nuggets pretrain --data stories.jsonl --tokenizer zoo/stories260k/tokenizer.json --hidden-size 48 --num-layers 3 --num-heads 6 --intermediate-size 128 -o my-model',
  },
  inspect: { usage: '<model> [--json]', example: 'nuggets inspect zoo/student-tiny' },
  generate: {
    usage: '<model> [--prompt <text>] [--adapter <folder>] [options]',
    example: 'nuggets generate zoo/student-tiny --prompt "Once upon a time" --max-new-tokens 32',
  },
  convert: {
    usage: '<checkpoint> [--tokenizer <file>] -o <folder>',
    example: 'nuggets convert stories260K.bin --tokenizer tok512.bin -o stories260k-hf',
  },
  eval: {
    usage: '<model> --tasks <names> -o <results.json> [--adapter <folder>] [options]',
    example: 'nuggets eval zoo/student-tiny --tasks super_ni:tasks/facts/test.jsonl -o results.json',
  },
  serve: {
    usage: '<model> [--adapter <folder>] [--port <n>] [options]',
    example: 'nuggets serve zoo/student-tiny --port 8000',
  },
  sense: {
    usage: '--teacher <model> --seeds <jsonl> -o <file.safetensors> [options]',
    example: 'nuggets sense --teacher zoo/teacher-facts --seeds tasks/facts/seeds.jsonl -o sens.safetensors',
  },
  'sense merge': {
    usage: '<shards...> -o <file.safetensors> [--dtype f32|bf16]',
    example: 'nuggets sense merge sens-0-of-2.safetensors sens-1-of-2.safetensors -o sens.safetensors',
  },
  extract: {
    usage: '--teacher <model|self> --student <model> --sensitivity <file> -o <folder> [options]',
    example:
      'nuggets extract --teacher zoo/teacher-facts --student zoo/student-tiny --sensitivity sens.safetensors -o init',
  },
  train: {
    usage: '<student> --data <jsonl> -o <folder> [--init <folder>] [options]',
    example: 'nuggets train zoo/student-tiny --data tasks/facts/train.jsonl --init init -o trained',
  },
  'distill-data': {
    usage: '<teacher> --data <jsonl> -o <jsonl> [--temperature <t> --top-p <p> --seed <n>] [options]',
    example: 'nuggets distill-data zoo/teacher-facts --data tasks/facts/train.jsonl -o answers.jsonl',
  },
  merge: {
    usage: '--student <model> --adapter <folder> -o <folder> [options]',
    example: 'nuggets merge --student zoo/student-tiny --adapter trained -o merged',
  },
  run: {
    usage: '<experiment.yaml> [-o <folder>] [-j <n>]',
    example: 'nuggets run experiments/demo.yaml -o out/demo -j 2',
  },
  report: { usage: '<run-dir> [-o <file.html>]', example: 'nuggets report out/demo -o report.html' },
  demo: { usage: '[-o <folder>] [-j <n>]', example: 'nuggets demo -o out/demo' },
  export: {
    usage: '<gguf|gguf-lora> ... -o <file.gguf>',
    example: 'nuggets export gguf zoo/student-tiny -o student.gguf --outtype q8_0',
  },
  'export gguf': {
    usage: '<model> [--adapter <folder>] -o <file.gguf> [--outtype f32|f16|bf16|q8_0]',
    example: 'nuggets export gguf zoo/student-tiny --adapter runs/train -o merged.gguf',
  },
  'export gguf-lora': {
    usage: '<adapter> --base <model> -o <file.gguf> [--outtype f32|f16|bf16]',
    example: 'nuggets export gguf-lora runs/train --base zoo/student-tiny -o lora.gguf',
  },
  'random-model': {
    usage: '<config.json|folder> -o <folder> [--dtype bf16|f16|f32] [--max-shard-size 5GB]',
    example: 'nuggets random-model fixtures/configs/llama-2-7b -o models/llama-2-7b-random',
  },
};

/** Commander errors that mean "the command line is wrong": one line and a hint, exit 2. */
const USAGE_ERRORS = new Set([
  'commander.unknownOption',
  'commander.unknownCommand',
  'commander.missingArgument',
  'commander.optionMissingArgument',
  'commander.missingMandatoryOptionValue',
  'commander.invalidArgument',
  'commander.excessArguments',
  'commander.conflictingOption',
]);

/** A command-line mistake found by the argument parser, with the command whose help explains it. */
export class UsageError extends CommanderError {
  constructor(
    err: CommanderError,
    readonly command: string,
  ) {
    super(2, err.code, err.message);
    this.name = 'UsageError';
  }

  /** `error: <msg> (see 'nuggets <cmd> --help')`, on one line. */
  line(): string {
    const msg = this.message
      .replace(/^error: /, '')
      .replace(/\s*\(Did you mean (.*)\?\)\s*$/s, '; did you mean $1?')
      .replace(/\s*\n\s*/g, ' ');
    return `error: ${msg} (see '${this.command} --help')`;
  }
}

/** The command and its subcommands, depth first. */
function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

/** "nuggets sense merge" for the merge subcommand of sense. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

export function buildProgram(): Command {
  const program = new Command('nuggets')
    .description('Parametric knowledge transfer between language models: sense, extract, train, eval.')
    .version(version(), '-V, --version', 'print the nuggets version')
    // Parser errors are printed by main() (one line with a hint), not by commander; the
    // setting is inherited by every command registered below.
    .configureOutput({ outputError: () => {} })
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
  registerDistillData(program);
  registerMerge(program);
  registerExperiment(program);
  registerReport(program);
  registerDemo(program);
  registerRandomModel(program);
  registerExport(program);
  for (const cmd of allCommands(program)) {
    const path = commandPath(cmd);
    const synopsis = SYNOPSIS[path.slice('nuggets '.length)];
    if (synopsis) {
      cmd.usage(synopsis.usage);
      cmd.addHelpText('after', `\nExample:\n  ${synopsis.example}`);
    }
    cmd.exitOverride((err) => {
      throw USAGE_ERRORS.has(err.code) ? new UsageError(err, path) : err;
    });
  }
  return program;
}

/** Runs the CLI; user errors print one clear line and exit 2, bugs print their stack and exit 1. */
export async function main(argv: string[]): Promise<number> {
  try {
    const program = buildProgram();
    rememberArgs(program, argv.slice(2));
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`nuggets: ${e.line()}`);
      return 2;
    }
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof InputError) {
      // Sources are named without the program name (one "nuggets:" prefix, added here).
      console.error(`nuggets: ${e.message.replace(/^nuggets:? /, '')}`);
      return 2;
    }
    // the machine's state (disk full, permissions), not a bug: one line with the path when it has one
    const system = systemErrorText(e);
    if (system !== null) {
      const err = e as NodeJS.ErrnoException;
      console.error(
        `nuggets: ${err.path ?? 'writing the output'}: ${system}${err.syscall ? ` in ${err.syscall}` : ''}`,
      );
      return 2;
    }
    console.error(e);
    return 1;
  }
}
