#!/usr/bin/env bash
# The project's test command (`npm test`): the Debian packages the tests use
# (scripts/ensure-tools: as root it installs what is missing, as another user it stops with the
# install line), typecheck, build dist/ (Pulumi programs in the e2e tests load the package from
# dist/), make the Pulumi CLI available, run every mocha suite (or only the spec files/globs
# given as arguments: `npm test -- test/e2e/noop.test.ts`).
# Any failing step makes the exit code non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== system packages (scripts/ensure-tools)"
bash scripts/ensure-tools

echo "== typecheck (tsc --noEmit)"
npx tsc --noEmit -p tsconfig.json

echo "== build dist/ (npm run build)"
npm run --silent build

echo "== Pulumi CLI (scripts/ensure-pulumi)"
PATH="$(bash scripts/ensure-pulumi)"
export PATH
export PULUMI_SKIP_UPDATE_CHECK=true # no network here; the harness sets it too
echo "pulumi: $(command -v pulumi) — $(pulumi version)"

echo "== mocha"
# .mocharc.json has no default spec (so targeted runs stay targeted): give it here.
if (($# == 0)); then set -- "test/**/*.test.ts"; fi
npx mocha "$@"
