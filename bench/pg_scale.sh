#!/usr/bin/env bash
# Scale-out benchmarks (issue 11), PostgreSQL against SQLite in one run:
#   1. bench_store_tasks: claims and completed tasks/s of 1, 2, 4, 8 worker
#      processes calling the store's claim/complete directly (nothing else);
#   2. bench/pg_scale.py: the same through `vbatch worker` processes and a
#      workflow that does almost nothing; images/s of a real model job with
#      1 vs 2 worker processes; count and list latency at 10k and 1M items;
#      the server's RSS idle and under list load.
#
#   bench/pg_scale.sh [--quick] [--rounds N] [pg_scale.py options...]
#
# PostgreSQL is a throwaway cluster (scripts/pg-up.sh: Unix socket, fsync,
# synchronous_commit and full_page_writes OFF), stopped and removed at exit;
# BENCH_DB=URI uses a server of your own instead.  Release build (build/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=1
QUICK=""
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --quick) QUICK=1; ARGS+=("$1"); shift ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
make -j2 bench >/tmp/vbatch-pg-scale-build.$$.log 2>&1 ||
    { tail -30 /tmp/vbatch-pg-scale-build.$$.log >&2; exit 1; }
rm -f /tmp/vbatch-pg-scale-build.$$.log

PGDIR=""
cleanup() { [ -n "$PGDIR" ] && scripts/pg-down.sh "$PGDIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
if [ -z "${BENCH_DB:-}" ]; then
    PGDIR=$(mktemp -d /tmp/vbpgs.XXXXXX)
    BENCH_DB=$(scripts/pg-up.sh "$PGDIR")
    echo "pg_scale note: PostgreSQL $(ls /usr/lib/postgresql | sort -V | tail -1), a throwaway cluster on a Unix" \
         "socket with fsync=off, synchronous_commit=off, full_page_writes=off (scripts/pg-up.sh): commits cost" \
         "no disk flush, as SQLite's synchronous=NORMAL in WAL mode costs none either"
fi
export BENCH_DB
echo "pg_scale note: $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg) at start" \
     "(this machine is shared with other builds: repeat runs to see the spread)"
for r in $(seq 1 "$ROUNDS"); do
    echo "pg_scale round $r of $ROUNDS"
    if [ -n "$QUICK" ]; then
        BENCH_PROCS=1,2 BENCH_BURST=50 build/bench/bench_store_tasks 200
    else
        build/bench/bench_store_tasks 2000
    fi
    /usr/bin/python3 bench/pg_scale.py --pg "$BENCH_DB" "${ARGS[@]}"
done
