#!/usr/bin/env bash
# Stop the throwaway PostgreSQL cluster of scripts/pg-up.sh DIR and remove DIR.
set -uo pipefail
DIR=${1:?usage: pg-down.sh DIR}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -f "$DIR/data/postmaster.pid" ] && [ -n "$BIN" ]; then
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null)
    else
        "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null
    fi
fi
rm -rf "$DIR"
