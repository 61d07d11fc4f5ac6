#!/usr/bin/env bash
# The whole test suite on a Debian machine, fresh or not: installs the system packages the tests
# use as referees (docker-registry, skopeo, ssh-agent, PostgreSQL), strace, promtool (Debian's
# prometheus: the alert rules' tests) and Chromium (the web pages' browser tests drive Debian's
# chromium through Playwright), a virtualenv in
# .venv with imgctl and its test tools, then runs pytest. Arguments go to pytest.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh tests/integration/test_copy.py -x
#   IMGCTL_LINT=1 bash scripts/test.sh   # ruff and mypy --strict first (what .ci/run does)
#
# PostgreSQL: the tests use the one at 127.0.0.1:5432 (user postgres, trust, database "test")
# when it answers; otherwise this script runs a throwaway cluster on a free port for the run.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/_venv.sh

# --- system packages -------------------------------------------------------------------------
needed=()
command -v docker-registry >/dev/null || needed+=(docker-registry)
command -v skopeo >/dev/null || needed+=(skopeo)
command -v ssh-agent >/dev/null || needed+=(openssh-client)
command -v strace >/dev/null || needed+=(strace)
# curl runs the admission commands imgctl demo --keep prints (tests/integration/test_demo.py).
command -v curl >/dev/null || needed+=(curl)
[ -x /usr/bin/chromium ] || needed+=(chromium)
# promtool (Debian's prometheus) checks and unit-tests deploy/'s alert rules.
command -v promtool >/dev/null || needed+=(prometheus)
pg_answers() {
    python3 -c 'import socket; socket.create_connection(("127.0.0.1", 5432), 2).close()' 2>/dev/null
}
if ! pg_answers && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    needed+=(postgresql postgresql-client)
fi
# CI always refreshes the package lists first, as its machine may be new.
if [ "${CI:-}" = "true" ] || [ ${#needed[@]} -gt 0 ]; then
    apt_install "${needed[@]}"
fi

# --- Python ----------------------------------------------------------------------------------
# Playwright drives /usr/bin/chromium (above); it must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
activate_venv -e ".[dev]"

# --- PostgreSQL ------------------------------------------------------------------------------
pg_dir=""
cleanup() {
    if [ -n "$pg_dir" ]; then
        run_as_pg "$(pg_bin)/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
}
trap cleanup EXIT
pg_bin() { dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)"; }
run_as_pg() {
    # initdb and postgres refuse to run as root.
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if pg_answers && [ -z "${IMGCTL_TEST_OWN_POSTGRES:-}" ]; then
    export IMGCTL_TEST_PG_PORT=5432
else
    pg_dir=$(mktemp -d /tmp/imgctl-test-pg.XXXXXX)
    port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    [ "$(id -u)" -eq 0 ] && chown postgres "$pg_dir"
    say "starting a throwaway PostgreSQL on 127.0.0.1:$port"
    run_as_pg "$(pg_bin)/initdb" -D "$pg_dir/data" -U postgres --auth=trust >/dev/null
    run_as_pg "$(pg_bin)/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
        -o "-h 127.0.0.1 -p $port -k $pg_dir -c fsync=off -c max_connections=200" start >/dev/null
    run_as_pg "$(pg_bin)/createdb" -h 127.0.0.1 -p "$port" -U postgres test
    export IMGCTL_TEST_PG_PORT=$port
fi

# --- lint (CI) and tests ---------------------------------------------------------------------
if [ -n "${IMGCTL_LINT:-}" ]; then
    ruff check src tests bench
    ruff format --check src tests bench
    mypy --strict src
fi
python -m pytest "$@"
