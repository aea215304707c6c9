#!/usr/bin/env bash
# Run every test: unit binaries, fuzz corpus replays, end-to-end tests.
# Ends with one summary line "N passed, N failed".
# BUILD selects the build folder (build-san for the sanitizer build).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-san}
export TEST_TIMEOUT_MULT=${TEST_TIMEOUT_MULT:-3}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export VBATCH_BIN=${VBATCH_BIN:-$PWD/$BUILD/vbatch}
pass=0; fail=0
log=$(mktemp)

# A throwaway PostgreSQL cluster for the tests that run on both backends
# (scripts/pg-up.sh: installs Debian's postgresql if missing, initdb in a
# temporary folder as an unprivileged user, Unix socket only), stopped at
# the end, also on failure.  VBATCH_TEST_PG=URI uses a server of your own;
# VBATCH_TEST_PG=off runs SQLite only.
PG_DIR=""
S3_DIR=""
cleanup() {
    rm -f "$log"
    if [ -n "$PG_DIR" ]; then scripts/pg-down.sh "$PG_DIR"; fi
    if [ -n "$S3_DIR" ]; then scripts/s3-down.sh "$S3_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ "${VBATCH_TEST_PG:-}" = off ]; then
    unset VBATCH_TEST_PG
    echo "test: PostgreSQL off (VBATCH_TEST_PG=off): SQLite only"
elif [ -z "${VBATCH_TEST_PG:-}" ]; then
    PG_DIR=$(mktemp -d /tmp/vbatch-pg.XXXXXX)
    t0=$(date +%s%N)
    if uri=$(scripts/pg-up.sh "$PG_DIR"); then
        export VBATCH_TEST_PG=$uri
        echo "test: PostgreSQL started in $PG_DIR in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    else
        echo "test: WARNING: no PostgreSQL could be started (see above): the PostgreSQL tests are skipped"
        rm -rf "$PG_DIR"; PG_DIR=""
    fi
fi

# A throwaway S3 object store (scripts/s3-up.sh: Ceph's radosgw from Debian,
# installed if missing, on a free loopback port, with a bucket) for the S3
# client and blob backend tests, stopped at the end.  VBATCH_TEST_S3=
# s3://bucket?endpoint=...&region=...&path_style=1 (with AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY set) uses a store of your own; VBATCH_TEST_S3=off
# skips those tests.
if [ "${VBATCH_TEST_S3:-}" = off ]; then
    unset VBATCH_TEST_S3
    echo "test: S3 off (VBATCH_TEST_S3=off): the S3 tests are skipped"
elif [ -z "${VBATCH_TEST_S3:-}" ]; then
    S3_DIR=$(mktemp -d /tmp/vbatch-s3.XXXXXX)
    t0=$(date +%s%N)
    if vars=$(scripts/s3-up.sh "$S3_DIR"); then
        while IFS= read -r line; do
            k=${line%%=*}; v=${line#*=}; v=${v#\'}; v=${v%\'}
            export "$k=$v"
        done <<<"$vars"
        echo "test: S3 (radosgw) started in $S3_DIR in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $VBATCH_TEST_S3"
    else
        echo "test: WARNING: no S3 store could be started (see above): the S3 tests are skipped"
        scripts/s3-down.sh "$S3_DIR"; S3_DIR=""
    fi
fi

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    "$t" 2>&1 | tee "$log"
    line=$(grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    if [ -z "$line" ]; then echo "FAIL $t (no summary: crashed)"; fail=$((fail+1)); continue; fi
    p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/' <<<"$line")
    f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/' <<<"$line")
    pass=$((pass+p)); fail=$((fail+f))
done

for r in "$BUILD"/tests/replay_*; do
    [ -x "$r" ] || continue
    name=${r##*/replay_}
    if [ -d "tests/fuzz/corpus/$name" ]; then
        if "$r" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
            echo "ok   fuzz-replay.$name ($(cat "$log" | tail -1))"; pass=$((pass+1))
        else
            cat "$log"; echo "FAIL fuzz-replay.$name"; fail=$((fail+1))
        fi
    fi
done

# store/ owns every SQL statement (issue 11): no SQL text, no sqlite3 and no
# db.h types in these modules.
for m in staging jobs api; do
    if grep -nE 'sqlite3|struct db(_conn|_stmt)?\b|db_(acquire|prepare|run|begin|kind)\(|\b(SELECT|INSERT INTO|UPDATE [a-z_]+ SET|DELETE FROM)\b' \
        src/$m/*.c src/$m/*.h; then
        echo "FAIL sql-owner.$m (SQL outside src/store/, above)"; fail=$((fail+1))
    else
        echo "ok   sql-owner.$m"; pass=$((pass+1))
    fi
done

# The end-to-end suite, on SQLite, then again on PostgreSQL when a cluster
# is there (VBATCH_E2E_DB=pg: every server, worker and CLI command of a test
# on a schema of its own; those tests are named [pg]), then a third time on
# PostgreSQL with the blobs on the S3 store when both are there
# (VBATCH_E2E_BLOBS=s3: each data folder under a prefix of its own of the
# bucket; named [pg][s3]).  SKIP_E2E_PG=1 runs the SQLite pass only,
# SKIP_E2E_S3=1 leaves out the third pass.
e2e_pass() { # NAME [ENV=VALUE...]
    local name=$1; shift
    env "$@" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e 2>&1 | tee "$log"
    line=$(tail -1 "$log")
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
    f=$(grep -oE '[0-9]+ (failed|error|errors)' <<<"$line" | awk '{s+=$1} END {print s+0}')
    if [ -z "$p$f" ] || { [ "$p" = 0 ] && [ "${f:-0}" = 0 ]; }; then
        echo "FAIL $name (pytest produced no result)"; fail=$((fail+1))
    fi
    echo "$name: ${p:-0} passed, ${f:-0} failed"
    pass=$((pass+p)); fail=$((fail+${f:-0}))
}
if ls tests/e2e/test_*.py >/dev/null 2>&1 && [ "${SKIP_E2E:-0}" != 1 ]; then
    e2e_pass e2e VBATCH_E2E_DB=sqlite
    if [ -n "${VBATCH_TEST_PG:-}" ] && [ "${SKIP_E2E_PG:-0}" != 1 ]; then
        t0=$(date +%s)
        e2e_pass "e2e[pg]" VBATCH_E2E_DB=pg
        echo "test: e2e on PostgreSQL took $(( $(date +%s) - t0 )) s"
    fi
    if [ -n "${VBATCH_TEST_PG:-}" ] && [ "${SKIP_E2E_PG:-0}" != 1 ] && [ -n "${VBATCH_TEST_S3:-}" ] &&
        [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] && [ "${SKIP_E2E_S3:-0}" != 1 ]; then
        t0=$(date +%s)
        e2e_pass "e2e[pg+s3]" VBATCH_E2E_DB=pg VBATCH_E2E_BLOBS=s3
        echo "test: e2e on PostgreSQL with blobs on S3 took $(( $(date +%s) - t0 )) s"
    fi
fi
# The Debian package: build, install, run, remove (root only; .ci/run sets it).
if [ "${VBATCH_TEST_DEB:-0}" = 1 ]; then
    scripts/deb-smoke.sh 2>&1 | tee "$log"
    line=$(grep -E '^deb-smoke: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    if [ -z "$line" ]; then echo "FAIL deb-smoke (no summary)"; fail=$((fail+1))
    else
        pass=$((pass+$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
        fail=$((fail+$(sed -E 's/.*, ([0-9]+) failed/\1/' <<<"$line")))
    fi
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
