#!/usr/bin/env bash
# Installs what the tests need besides Python packages: Chromium, for the web page's test in a
# real browser (tests/test_server_page.py), from Debian's packages.
#
#   bash .ci/install-test-deps.sh
#
# Idempotent and quiet: prints nothing and changes nothing when a Chromium is already installed;
# prints apt's errors only when installing fails (and then exits non-zero). Runs as root (CI) or
# through sudo. Without apt-get it says what to install and exits 0: the test then skips, except
# under CI=true, where it fails.
set -euo pipefail

for browser in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$browser" >/dev/null 2>&1; then
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: no apt-get here; install Chromium for tests/test_server_page.py" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-test-deps: could not install chromium (see apt's output above)" >&2
    exit 1
fi
