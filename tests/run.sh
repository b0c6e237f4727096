#!/usr/bin/env bash
# `deno task test`: the tools the tests need (installed when missing), format, lint and type
# checks, the test services, then every test under tests/.
# Extra arguments go to `deno test` (e.g. `deno task test tests/config/`).
# JUNIT_PATH (optional) receives a JUnit XML report; .ci/run reads it for its final count.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/tools.sh

echo "== deno fmt --check"; deno fmt --check
echo "== deno lint"; deno lint
echo "== deno check"; deno check main.ts mod/demo/main.ts tests/

if [ -f tests/services/up.sh ]; then
  echo "== test services"
  bash tests/services/up.sh
fi

junit=()
[ -n "${JUNIT_PATH:-}" ] && junit=(--junit-path="$JUNIT_PATH")
echo "== deno test"
paths=("$@")
[ ${#paths[@]} -eq 0 ] && paths=(tests/)
exec deno test -A --no-check "${junit[@]}" "${paths[@]}"
