#!/bin/sh
# auth_bench.sh — authenticated GET req/s of `vbatch serve` divided by the
# req/s of a bare libmicrohttpd hello-world (bench/bench_http_hello.c), same
# machine, same client (build/bench/bench_http_server, 4 keep-alive
# connections), same run, alternating rounds.
#
#   bench/auth_bench.sh [--bin BIN] [--threads N] [--rounds R] [--pg URI] [--ws-rate N]
#
# BIN defaults to $BUILD/vbatch (BUILD=build); the bench programs come from
# $BUILD/bench (`make bench` builds them).  Both servers get N HTTP threads
# (default 8: what `vbatch serve` picks on a 2-CPU machine).  Figures, one
# line each ("bench http server_vs_hello ..."):
#   healthz  GET /healthz                      no key: the HTTP layer alone
#   auth     GET /?api_key=K                   the key check + a JSON answer
#   batches  GET /data-staging/v1/external/W/batches?api_key=K
#                                              the key check + a database list
# With --pg URI the server's database is that PostgreSQL database (a fresh
# data folder each run; the workspace "bench" must not exist there yet).
# With --ws-rate N the workspace gets a request rate limit of N/s (burst N,
# `vbatch workspace set --rate-limit`): every authenticated request then
# also counts itself in the database (choose N above the rates measured to
# see that cost without refusals).
set -eu

BUILD=${BUILD:-build}
BIN=$BUILD/vbatch
THREADS=8
ROUNDS=6
PG=
WSRATE=
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --pg) PG=$2; shift 2 ;;
    --ws-rate) WSRATE=$2; shift 2 ;;
    *) echo "usage: $0 [--bin BIN] [--threads N] [--rounds R] [--pg URI] [--ws-rate N]" >&2; exit 2 ;;
    esac
done
CLIENT=$BUILD/bench/bench_http_server
HELLO=$BUILD/bench/bench_http_hello
for f in "$BIN" "$CLIENT" "$HELLO"; do
    [ -x "$f" ] || { echo "$0: $f is missing (make bench)" >&2; exit 2; }
done

tmp=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    i=0
    until /usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "$0: nothing listens on port $1" >&2; exit 1; }
        sleep 0.1
    done
}

dbopt=
[ -n "$PG" ] && dbopt="--db $PG"
# shellcheck disable=SC2086
"$BIN" workspace create bench --data "$tmp/data" $dbopt >"$tmp/ws.txt"
KEY=$(sed -n 's/^api_key: //p' "$tmp/ws.txt")
[ -n "$KEY" ] || { echo "$0: no key from 'workspace create'" >&2; exit 1; }
if [ -n "$WSRATE" ]; then
    # shellcheck disable=SC2086
    "$BIN" workspace set bench --rate-limit "$WSRATE" --rate-burst "$WSRATE" --data "$tmp/data" $dbopt >/dev/null
fi

VPORT=$(free_port)
# shellcheck disable=SC2086
VBATCH_PG_EXPERIMENTAL=1 "$BIN" serve --quiet --data "$tmp/data" $dbopt --listen "127.0.0.1:$VPORT" \
    --threads "$THREADS" --workers 0 >"$tmp/serve.log" 2>&1 &
pids="$pids $!"
HPORT=$(free_port)
"$HELLO" "$HPORT" "$THREADS" >"$tmp/hello.log" 2>&1 &
pids="$pids $!"
wait_port "$VPORT"
wait_port "$HPORT"

echo "# bin=$BIN threads=$THREADS rounds=$ROUNDS db=$([ -n "$PG" ] && echo postgres || echo sqlite) ws_rate=${WSRATE:-none} nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
for what in healthz auth batches; do
    case $what in
    healthz) path=/healthz ;;
    auth) path="/?api_key=$KEY" ;;
    batches) path="/data-staging/v1/external/bench/batches?api_key=$KEY" ;;
    esac
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$VPORT$path")
    [ "$code" = 200 ] || { echo "$0: GET $what answered $code" >&2; exit 1; }
    printf '%s ' "$what"
    BENCH_ROUNDS=$ROUNDS "$CLIENT" "$VPORT" "$path" "$HPORT"
done
