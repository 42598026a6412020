#!/usr/bin/env bash
# `npm test`: everything CI checks, cheapest first, stopping at the first failure.
# NUGGETS_BACKEND=native makes a missing or broken addon an error rather than a silent fallback to the
# TypeScript kernels (`npm ci` keeps going when the C++ does not build), so the first step, `nuggets info`,
# fails within seconds when the addon did not build, and the native parity tests cannot skip.
# The TypeScript kernels are still exercised: the parity tests compare them with the native ones, and
# test/engine-backend.test.ts runs child processes with NUGGETS_BACKEND=ts and with no addon at all.
set -euo pipefail
cd "$(dirname "$0")/.."
export NUGGETS_BACKEND=native
node --import tsx src/cli/run.ts info
npm run --silent typecheck
npm run --silent lint
npm run --silent format:check
npm run --silent check:circular
npm run --silent test:unit
