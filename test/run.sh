#!/usr/bin/env bash
# The test command (`npm test`). As root it first installs the Debian packages the tests use
# (lab/install-deps.sh) and builds the lab's test platform A; without root it installs nothing
# and the tests that need root or a missing package skip, naming it. Then: type-check, the
# unit tests, the QEMU end-to-end tests, and a check that the tests left no process or network
# namespace behind (test/leftovers.ts). Exits non-zero when a test failed or something was left.
#
#   npm test                              the whole suite
#   npm test -- test/lab-cli.test.ts      only these files (still with the leftover check)
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  bash lab/install-deps.sh || { echo "npm test: installing the Debian packages failed (lab/install-deps.sh)" >&2; exit 1; }
  # The e2e boots need it; the kernel package is downloaded once into lab-build/cache.
  bash lab/build-test-platform.sh --version A >/dev/null || { echo "npm test: building test platform A failed (lab/build-test-platform.sh)" >&2; exit 1; }
else
  missing=$(bash lab/install-deps.sh --check 2>&1) || echo "npm test: not root, so nothing is installed; ${missing#install-deps: }; tests needing them or root are skipped" >&2
fi

node_modules/.bin/tsc --noEmit || exit 1

# One folder per run: the tests' TMPDIR, and a marker every process they start inherits, so
# the check afterwards finds exactly this run's leftovers.
base=$(mktemp -d "${TMPDIR:-/tmp}/fleetboot-tests.XXXXXX")
mkdir "$base/tmp"
outer_tmpdir=${TMPDIR:-}
export TMPDIR=$base/tmp
export FLEETBOOT_TEST_RUN=${base##*/}
# node --test's own choice (spec on a terminal, else TAP) to the screen, TAP to a file for the total.
reporter=tap
[ -t 1 ] && reporter=spec

status=0
run_tests() { # name, node --test arguments...
  local name=$1
  shift
  node --import tsx --test --test-reporter="$reporter" --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$base/$name.tap" "$@" || status=1
}
if [ $# -gt 0 ]; then
  run_tests selected "$@"
else
  run_tests unit --test-concurrency=2 test/*.test.ts
  # After the unit tests, two files at a time: each lab has its own namespace and its own
  # platform folders (test/e2e/lab-fixtures.ts buildPlatform), and most of a TCG boot is waiting.
  run_tests e2e --test-concurrency=2 test/e2e/*.test.ts
fi

run_id=$FLEETBOOT_TEST_RUN
unset FLEETBOOT_TEST_RUN
if [ -n "$outer_tmpdir" ]; then export TMPDIR=$outer_tmpdir; else unset TMPDIR; fi
node --import tsx test/leftovers.ts "$run_id" "$base"
left=$?
[ "$left" = 0 ] || status=1

# One closing line for the whole command (each node --test run above printed its own).
total() { cat "$base"/*.tap 2>/dev/null | awk -v k="$1" '$0 ~ "^# " k " [0-9]+$" { n += $3 } END { print n + 0 }'; }
passed=$(total pass)
failed=$(( $(total fail) + $(total cancelled) + (left != 0) ))
skipped=$(total skipped)
rm -rf "$base"
echo "total: $passed passed, $failed failed, $skipped skipped"
exit $status
