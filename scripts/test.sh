#!/usr/bin/env bash
# Run every test: unit binaries, fuzz corpus replays, end-to-end tests.
# Ends with one summary line "N passed, N failed", after a line with the
# time each phase took ("test: times: ...").
# BUILD selects the build folder (build-san for the sanitizer build).
# E2E_SERIAL=1 runs the three e2e passes one after the other instead of at
# once; E2E_WORKERS=N runs each pass on N pytest workers (pytest-xdist;
# default 3, 0 = one process); E2E_TESTS="tests/e2e/test_x.py ..." runs
# those e2e files (or test ids) only.  See tests/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-san}
export TEST_TIMEOUT_MULT=${TEST_TIMEOUT_MULT:-3}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export VBATCH_BIN=${VBATCH_BIN:-$PWD/$BUILD/vbatch}
pass=0; fail=0
work=$(mktemp -d /tmp/vbatch-test.XXXXXX)
log=$work/log
T_ALL=$(date +%s)
TIMES=()
took() { # NAME T0: records and prints the time since T0
    local d=$(( $(date +%s) - $2 ))
    TIMES+=("$1 ${d}s")
    echo "test: time: $1 took $d s"
}

# A throwaway PostgreSQL cluster for the tests that run on both backends
# (scripts/pg-up.sh: installs Debian's postgresql if missing, initdb in a
# temporary folder as an unprivileged user, Unix socket only), stopped at
# the end, also on failure.  VBATCH_TEST_PG=URI uses a server of your own;
# VBATCH_TEST_PG=off runs SQLite only.
PG_DIR=""
S3_DIR=""
cleanup() {
    local g
    for g in "$work"/*.pgid; do [ -f "$g" ] && kill -TERM -- "-$(cat "$g")" 2>/dev/null; done
    if [ -n "${deb_pid:-}" ]; then kill "$deb_pid" 2>/dev/null; fi
    rm -rf "$work"
    if [ -n "$PG_DIR" ]; then scripts/pg-down.sh "$PG_DIR"; fi
    if [ -n "$S3_DIR" ]; then scripts/s3-down.sh "$S3_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Both are started at once (in the background), and the fuzz replays and
# the SQL-owner checks, which need neither, run meanwhile.
T0=$(date +%s)
pg_pid=""; s3_pid=""
if [ "${VBATCH_TEST_PG:-}" = off ]; then
    unset VBATCH_TEST_PG
    echo "test: PostgreSQL off (VBATCH_TEST_PG=off): SQLite only"
elif [ -z "${VBATCH_TEST_PG:-}" ]; then
    PG_DIR=$(mktemp -d /tmp/vbatch-pg.XXXXXX)
    scripts/pg-up.sh "$PG_DIR" >"$work/pg.out" 2>"$work/pg.err" &
    pg_pid=$!
    # pg-up.sh installs postgresql when missing: no second apt-get meanwhile
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || wait "$pg_pid"
fi
if [ "${VBATCH_TEST_S3:-}" = off ]; then
    unset VBATCH_TEST_S3
    echo "test: S3 off (VBATCH_TEST_S3=off): the S3 tests are skipped"
elif [ -z "${VBATCH_TEST_S3:-}" ]; then
    S3_DIR=$(mktemp -d /tmp/vbatch-s3.XXXXXX)
    scripts/s3-up.sh "$S3_DIR" >"$work/s3.out" 2>"$work/s3.err" &
    s3_pid=$!
fi

T1=$(date +%s)
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
took fuzz-replays "$T1"

if [ -n "$pg_pid" ]; then
    if wait "$pg_pid"; then
        export VBATCH_TEST_PG=$(tail -1 "$work/pg.out")
        cat "$work/pg.err" >&2
        echo "test: PostgreSQL started in $PG_DIR"
    else
        cat "$work/pg.err" >&2
        echo "test: WARNING: no PostgreSQL could be started (see above): the PostgreSQL tests are skipped"
        rm -rf "$PG_DIR"; PG_DIR=""
    fi
fi
if [ -n "$s3_pid" ]; then
    if wait "$s3_pid"; then
        cat "$work/s3.err" >&2
        while IFS= read -r line; do
            k=${line%%=*}; v=${line#*=}; v=${v#\'}; v=${v%\'}
            export "$k=$v"
        done <"$work/s3.out"
        echo "test: S3 (radosgw) started in $S3_DIR: $VBATCH_TEST_S3"
    else
        cat "$work/s3.err" >&2
        echo "test: WARNING: no S3 store could be started (see above): the S3 tests are skipped"
        scripts/s3-down.sh "$S3_DIR"; S3_DIR=""
    fi
fi
took services "$T0"

T0=$(date +%s)
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    "$t" 2>&1 | tee "$log"
    line=$(grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    if [ -z "$line" ]; then echo "FAIL $t (no summary: crashed)"; fail=$((fail+1)); continue; fi
    p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/' <<<"$line")
    f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/' <<<"$line")
    pass=$((pass+p)); fail=$((fail+f))
done

took unit "$T0"

# The end-to-end suite, on SQLite, then again on PostgreSQL when a cluster
# is there (VBATCH_E2E_DB=pg: every server, worker and CLI command of a test
# on a schema of its own; those tests are named [pg]), then a third time on
# PostgreSQL with the blobs on the S3 store when both are there
# (VBATCH_E2E_BLOBS=s3: each data folder under a prefix of its own of the
# bucket; named [pg][s3]).  SKIP_E2E_PG=1 runs the SQLite pass only,
# SKIP_E2E_S3=1 leaves out the third pass.
#
# Most e2e tests wait on a server, so the passes run at once (E2E_SERIAL=1:
# one after the other), each on E2E_WORKERS pytest-xdist workers (whole
# modules per worker: a module's shared server stays in one process); each
# pass's output is printed when it has ended, in the order above.  Tests
# marked `serial` (latency bounds) run alone: conftest.py holds a lock file
# (VBATCH_E2E_LOCK) shared by every test while they run at once.
E2E_WORKERS=${E2E_WORKERS:-3}
if [ "$E2E_WORKERS" != 0 ] && ! /usr/bin/python3 -c 'import xdist' 2>/dev/null; then
    echo "test: WARNING: pytest-xdist missing (python3-pytest-xdist): one process per e2e pass"
    E2E_WORKERS=0
fi
xdist=(); [ "$E2E_WORKERS" = 0 ] || xdist=(-n "$E2E_WORKERS" --dist loadfile)
export VBATCH_E2E_LOCK=$work/e2e.lock
e2e_run() { # NAME ENV... : runs one pass, output in $work/NAME.out, seconds in $work/NAME.time
    local name=$1 t0; shift
    t0=$(date +%s)
    # a process group of its own: an interrupted run stops it and its servers (cleanup)
    setsid env "$@" /usr/bin/python3 -m pytest -q -p no:cacheprovider "${xdist[@]}" ${E2E_TESTS:-tests/e2e} \
        >"$work/$name.out" 2>&1 &
    echo $! >"$work/$name.pgid"
    wait $!
    rm -f "$work/$name.pgid"
    echo $(( $(date +%s) - t0 )) 2>/dev/null >"$work/$name.time" # (gone when interrupted)
}
e2e_count() { # NAME : prints the pass's output and adds up its summary line
    local name=$1 out=$work/$1.out line p f
    echo "---- $name: $(tail -1 "$out")"
    cat "$out"
    line=$(tail -1 "$out")
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
    f=$(grep -oE '[0-9]+ (failed|error|errors)' <<<"$line" | awk '{s+=$1} END {print s+0}')
    if [ -z "$p$f" ] || { [ "$p" = 0 ] && [ "${f:-0}" = 0 ]; }; then
        echo "FAIL $name (pytest produced no result)"; fail=$((fail+1))
    fi
    echo "$name: ${p:-0} passed, ${f:-0} failed"
    pass=$((pass+p)); fail=$((fail+${f:-0}))
    TIMES+=("$name $(cat "$work/$name.time" 2>/dev/null || echo '?')s")
}
# The Debian package: build, install, run, remove (root only; .ci/run sets
# it).  Its build takes one core for minutes while the e2e tests mostly
# wait: it runs meanwhile, in the background (E2E_SERIAL=1: at the end).
deb_pid=""
deb_smoke() {
    local t0; t0=$(date +%s)
    scripts/deb-smoke.sh >"$work/deb.out" 2>&1
    echo $(( $(date +%s) - t0 )) >"$work/deb.time"
}
if [ "${VBATCH_TEST_DEB:-0}" = 1 ] && [ "${E2E_SERIAL:-0}" != 1 ]; then
    deb_smoke & deb_pid=$!
fi
if ls tests/e2e/test_*.py >/dev/null 2>&1 && [ "${SKIP_E2E:-0}" != 1 ]; then
    T0=$(date +%s)
    passes=("e2e VBATCH_E2E_DB=sqlite")
    if [ -n "${VBATCH_TEST_PG:-}" ] && [ "${SKIP_E2E_PG:-0}" != 1 ]; then
        passes+=("e2e[pg] VBATCH_E2E_DB=pg")
        if [ -n "${VBATCH_TEST_S3:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] && [ "${SKIP_E2E_S3:-0}" != 1 ]; then
            passes+=("e2e[pg+s3] VBATCH_E2E_DB=pg VBATCH_E2E_BLOBS=s3")
        fi
    fi
    pids=()
    for ps in "${passes[@]}"; do
        read -r -a args <<<"$ps"
        if [ "${E2E_SERIAL:-0}" = 1 ]; then
            echo "test: ${args[0]} running (E2E_WORKERS=$E2E_WORKERS)"
            e2e_run "${args[@]}"
            e2e_count "${args[0]}"
        else
            e2e_run "${args[@]}" &
            pids+=($!)
        fi
    done
    if [ "${E2E_SERIAL:-0}" != 1 ]; then
        echo "test: e2e passes running at once (E2E_WORKERS=$E2E_WORKERS each):$(printf ' %s' "${passes[@]%% *}")"
        for i in "${!pids[@]}"; do
            wait "${pids[$i]}"
            read -r -a args <<<"${passes[$i]}"
            e2e_count "${args[0]}"
        done
    fi
    took e2e-passes "$T0"
fi
if [ "${VBATCH_TEST_DEB:-0}" = 1 ] && [ "${E2E_SERIAL:-0}" = 1 ]; then
    deb_smoke & deb_pid=$!
fi
# The Debian package (started with the e2e passes, above): its output.
if [ -n "$deb_pid" ]; then
    wait "$deb_pid"
    cat "$work/deb.out"
    line=$(grep -E '^deb-smoke: [0-9]+ passed, [0-9]+ failed$' "$work/deb.out" | tail -1)
    if [ -z "$line" ]; then echo "FAIL deb-smoke (no summary)"; fail=$((fail+1))
    else
        pass=$((pass+$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
        fail=$((fail+$(sed -E 's/.*, ([0-9]+) failed/\1/' <<<"$line")))
    fi
    TIMES+=("deb-smoke $(cat "$work/deb.time")s")
fi
TIMES+=("total $(( $(date +%s) - T_ALL ))s")
echo "test: times:$(printf ' %s,' "${TIMES[@]}" | sed 's/,$//')"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
