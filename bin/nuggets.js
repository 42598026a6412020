#!/usr/bin/env node
// The `nuggets` command: runs the compiled CLI (npm ci builds it through the "prepare" script).
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/run.js', import.meta.url);
if (!existsSync(main)) {
  console.error('nuggets: the CLI is not built yet; run "npm run build" in the nuggets folder');
  process.exit(1);
}
await import(main.href);
