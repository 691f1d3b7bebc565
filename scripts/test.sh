#!/usr/bin/env bash
# The whole test suite: lint gates, then the tests against real services (Ceph RGW, PostgreSQL,
# nginx, podman) started by the project's own harness. Installs what it needs (scripts/bootstrap.sh).
# The last line printed is pytest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/bootstrap.sh
. .venv/bin/activate
export ANSIBLE_COLLECTIONS_PATH="$PWD/.cache/collections"

step() { printf '\n=== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "ruff"
ruff check .
# ansible-lint and ansible-test sanity (about a minute of CPU between them) run beside pytest, whose two
# workers leave a core idle while they wait on RGW, PostgreSQL and nginx; their output is printed, and
# their result counted, once pytest is done.
gates_log=$(mktemp /tmp/fos-gates-XXXXXX.log)
(
  set -e
  echo "=== ansible-lint (production profile)"
  ansible-lint --profile production --offline -q
  echo "=== ansible-test sanity"
  scripts/sanity.sh
) > "$gates_log" 2>&1 &
gates=$!
step "pytest: unit and integration tests against real services"
# --durations=25: every run lists its slowest tests (the suite must stay under an hour on CI).
# The harness stops every service it started at session end; the second run checks that
# nothing is left behind (it starts nothing itself).
# Two pytest-xdist workers (FOS_TEST_WORKERS=0 runs in one process): one test keeps about one of this
# machine's two cores busy (ansible-playbook's per-task work) while it waits on RGW, PostgreSQL and nginx
# the rest of the time. Each worker starts its own services; tests/conftest.py puts the long files first.
status=0
python -m pytest -p no:cacheprovider --durations=25 -n "${FOS_TEST_WORKERS:-2}" --dist worksteal \
  tests/unit tests/integration "$@" || status=$?
gates_status=0
wait "$gates" || gates_status=$?
step "ansible-lint and ansible-test sanity (run beside pytest): $([ "$gates_status" = 0 ] && echo passed || echo FAILED)"
cat "$gates_log"
rm -f "$gates_log"
[ "$gates_status" = 0 ] || status=$((status ? status : gates_status))
step "pytest: no leftover services ($(( $(date +%s) - start ))s in all)"
python -m pytest -p no:cacheprovider -q tests/after || status=$((status ? status : $?))
exit "$status"
