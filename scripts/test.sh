#!/usr/bin/env bash
# The project's test command (`npm test`): typecheck, build dist/ (Pulumi programs in the e2e
# tests load the package from dist/), make the Pulumi CLI available, run every mocha suite.
# Any failing step makes the exit code non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== typecheck (tsc --noEmit)"
npx tsc --noEmit -p tsconfig.json

echo "== build dist/ (npm run build)"
npm run --silent build

echo "== Pulumi CLI (scripts/ensure-pulumi)"
PATH="$(bash scripts/ensure-pulumi)"
export PATH
echo "pulumi: $(command -v pulumi) — $(pulumi version)"

echo "== mocha"
npx mocha "$@"
