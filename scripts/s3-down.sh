#!/usr/bin/env bash
# Stop the object store that scripts/s3-up.sh DIR started (its daemons, by
# their pid files: TERM, then KILL after 10 s) and remove DIR.
set -u
DIR=${1:?usage: s3-down.sh DIR}
[ -d "$DIR" ] || exit 0
pids=()
for f in "$DIR"/run/*.pid; do [ -f "$f" ] && pids+=("$(cat "$f")"); done
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
for _ in $(seq 1 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
done
for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
rm -rf "$DIR"
exit 0
