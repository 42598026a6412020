/**
 * A command line as one POSIX-shell string, for the records that say how to redo a run by hand
 * (RECIPE.md, a model card, a study job's commands.sh). Words made only of safe characters stay bare;
 * any other word is single-quoted, with each ' written as '\''.
 */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
