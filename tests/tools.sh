#!/usr/bin/env bash
# The Debian packages the tests use, installed when missing (apt-get update once, and only then).
# Run by tests/run.sh (README's test command). EDGE_AGENT_NO_INSTALL=1 (or no apt-get) only lists
# what is missing; the tests that need it then fail with the package's name.
set -euo pipefail

need=()
# packaging: shellcheck (install.sh), systemd-analyze (the unit), unzip (the Lambda zip).
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
# The test services: Kafka needs Java 17+ and Maven, moto a Python venv (tests/services/up.sh).
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
# The generate/receive dashboard test drives headless Chromium (tests/_cdp.ts).
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo=(sudo -n)
  if [ -n "${EDGE_AGENT_NO_INSTALL:-}" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "== missing (tests that use them will fail): ${need[*]}" >&2
  else
    echo "== installing ${need[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
      "${need[@]}" >/dev/null
  fi
fi

