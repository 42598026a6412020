/** The command line as typed, for the records that keep it (training.json, model cards). */
import type { Command } from 'commander';

const typed = new WeakMap<Command, string[]>();

/** Remembers the arguments after `nuggets` that `program` is about to parse (main does this). */
export function rememberArgs(program: Command, args: readonly string[]): void {
  typed.set(program, [...args]);
}

/** The arguments after `nuggets` of the command line that ran `cmd` (undefined when not remembered). */
export function typedArgs(cmd: Command): string[] | undefined {
  let root = cmd;
  while (root.parent) root = root.parent;
  const args = typed.get(root);
  return args && [...args];
}
