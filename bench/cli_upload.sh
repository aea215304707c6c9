#!/usr/bin/env bash
# Client upload throughput: `vbatch batch upload` against the same shards
# PUT with curl, same server, same run, alternating rounds.
#
#   bench/cli_upload.sh [--bin build/vbatch] [--images N] [--rounds R] [--parallel P]
#
# N images of ~100 KB (valid JPEGs: the test JPEG padded with comment
# segments; default 1000 = 100 MB) are written once to a temp folder.
# Each round:
#   client: vbatch batch upload DIR --batch cli-R --parallel P --no-wait
#           (lists the empty batch, builds tar shards of 500 in memory,
#           P parallel PUTs to signed URLs; the time includes all of it)
#   curl:   the same shards, pre-built as .tar files before the clock starts
#           (so curl gets the easier job), each one a POST bulk-upload for a
#           signed URL and a `curl -T` PUT, P at a time (xargs -P)
# Between rounds the script waits until the server has indexed everything,
# so that background indexing does not fall into the next measurement.
# Prints one line per round and the medians:
#   bench cli_upload client_mbps=… curl_mbps=… ratio=…
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/vbatch
N=1000
ROUNDS=3
PAR=4
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --images) N=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --parallel) PAR=$2; shift 2 ;;
    *) echo "usage: $0 [--bin build/vbatch] [--images N] [--rounds R] [--parallel P]" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] || { echo "bench: no $BIN (make first)" >&2; exit 1; }
BIN=$(readlink -f "$BIN")
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/vbatch-cli-bench.XXXXXX")
SRV=
cleanup() {
    [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "bench: writing $N images of ~100 KB and their tar shards into $WORK" >&2
/usr/bin/python3 - "$WORK" "$N" <<'EOF'
import io, os, sys, tarfile
sys.path.insert(0, 'tests/e2e')
import conftest
work, n = sys.argv[1], int(sys.argv[2])
base = conftest.jpeg_bytes()
os.makedirs(f'{work}/imgs')
os.makedirs(f'{work}/shards')
names = []
for i in range(n):
    need, segs = 100 * 1024 - len(base), b''
    filler = (i.to_bytes(4, 'big') * 20000)
    while need > 4:
        k = min(need - 4, 65000)
        segs += b'\xff\xfe' + (k + 2).to_bytes(2, 'big') + filler[:k]
        need -= k + 4
    name = f'img{i:06d}.jpg'
    with open(f'{work}/imgs/{name}', 'wb') as f:
        f.write(base[:2] + segs + base[2:])
    names.append(name)
names.sort()  # the client's order: shards of 500 in name order
for s in range(0, n, 500):
    with tarfile.open(f'{work}/shards/{s // 500:04d}.tar', 'w', format=tarfile.PAX_FORMAT) as t:
        for name in names[s:s + 500]:
            t.add(f'{work}/imgs/{name}', arcname=name)
EOF
BYTES=$(du -sb "$WORK/imgs" | awk '{print $1}')

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --listen 127.0.0.1:$PORT --data "$WORK/data" --quiet --workers 0 >"$WORK/out" 2>"$WORK/log" &
SRV=$!
for _ in $(seq 100); do
    grep -q '^listening:' "$WORK/out" 2>/dev/null && break
    sleep 0.1
done
KEY=$(awk '/^api_key:/{print $2}' "$WORK/out")
WS=$(awk '/^workspace:/{print $2}' "$WORK/out")
export VBATCH_SERVER=http://127.0.0.1:$PORT VBATCH_API_KEY=$KEY
DS=http://127.0.0.1:$PORT/data-staging/v1/external/$WS/batches

now() { date +%s.%N; }
wait_indexed() { # batch want
    for _ in $(seq 1200); do
        c=$(curl -s "$DS/$1/count?api_key=$KEY" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("count",0))' 2>/dev/null || echo 0)
        [ "$c" -ge "$2" ] && return 0
        sleep 0.25
    done
    echo "bench: batch $1 stayed at $c of $2" >&2
    return 1
}
put_one() { # batch shard-file
    # sed rather than a Python start per shard: the baseline pays only curl
    url=$(curl -sf -X POST "$DS/$1/bulk-upload/image-files?api_key=$KEY&displayName=$1" |
        sed -n 's/.*"uploadURL": *"\([^"]*\)".*/\1/p')
    [ -n "$url" ] || { echo "bench: no upload URL" >&2; return 1; }
    curl -sf -H 'Expect:' -T "$2" "$url" >/dev/null
}
export -f put_one
export DS KEY

client=()
curlr=()
for r in $(seq "$ROUNDS"); do
    t0=$(now)
    "$BIN" batch upload "$WORK/imgs" --batch "cli-$r" --parallel "$PAR" --no-wait 2>/dev/null >/dev/null
    t1=$(now)
    wait_indexed "cli-$r" "$N"
    t2=$(now)
    ls "$WORK"/shards/*.tar | xargs -P "$PAR" -I{} bash -c 'put_one "$0" "$1"' "curl-$r" {}
    t3=$(now)
    wait_indexed "curl-$r" "$N"
    c=$(echo "$BYTES / ($t1 - $t0) / 1000000" | bc -l)
    k=$(echo "$BYTES / ($t3 - $t2) / 1000000" | bc -l)
    client+=("$c")
    curlr+=("$k")
    printf 'bench cli_upload round=%d images=%d bytes=%d client_mbps=%.1f curl_mbps=%.1f ratio=%.2f\n' \
        "$r" "$N" "$BYTES" "$c" "$k" "$(echo "$c / $k" | bc -l)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mc=$(median "${client[@]}")
mk=$(median "${curlr[@]}")
printf 'bench cli_upload median client_mbps=%.1f curl_mbps=%.1f ratio=%.2f parallel=%d\n' "$mc" "$mk" \
    "$(echo "$mc / $mk" | bc -l)" "$PAR"
