// shellQuote: the shell itself (/bin/sh) reads the quoted line back into the same words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { shellQuote } from '../src/config/shell.js';

test('shellQuote: safe words stay bare; the shell splits the line back into the original words', () => {
  assert.equal(
    shellQuote(['nuggets', 'train', '--lr', '3e-4', '--out', 'runs/a_b.c']),
    'nuggets train --lr 3e-4 --out runs/a_b.c',
  );
  assert.equal(shellQuote(['a b', "it's", '']), `'a b' 'it'\\''s' ''`);
  const words = [
    'nuggets',
    'x y',
    "it's",
    '$HOME',
    '`id`',
    'a;b',
    '*',
    '"q"',
    '',
    'tab\there',
    'line\nbreak',
    '\\',
  ];
  const out = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${shellQuote(words)}`], { encoding: 'utf8' });
  assert.deepEqual(out.split('\0').slice(0, -1), words);
});
