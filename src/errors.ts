/** Errors about user input: they name the file (or source) and what is wrong, and the CLI prints them without a stack. */
export class InputError extends Error {
  constructor(
    readonly source: string,
    readonly problem: string,
  ) {
    super(`${source}: ${problem}`);
    this.name = 'InputError';
  }
}
