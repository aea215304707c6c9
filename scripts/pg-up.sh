#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the tests, in folder DIR:
#   scripts/pg-up.sh DIR     -> prints the libpq URI on stdout
#   scripts/pg-down.sh DIR   -> stops it and removes DIR
# Installs Debian's postgresql when no server is found (without creating
# or starting Debian's own "main" cluster).  initdb runs as an unprivileged
# user (the 'postgres' system user when run as root, as tests are in CI);
# the server listens only on a Unix socket inside DIR (no TCP), with
# password authentication (user vbatch, a random password, in the URI) and
# durability off (fsync, synchronous_commit: a test cluster).
set -euo pipefail
DIR=${1:?usage: pg-up.sh DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
# Unix socket paths are limited to 107 bytes: DIR/.s.PGSQL.5432 must fit.
if [ ${#DIR} -gt 90 ]; then echo "pg-up: folder path too long for a Unix socket: $DIR" >&2; exit 1; fi

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
BIN=$(find_bin)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    echo "pg-up: installing postgresql" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    # Debian's package would create and start a cluster of its own: not wanted.
    $SUDO mkdir -p /etc/postgresql-common
    [ -e /etc/postgresql-common/createcluster.conf ] ||
        echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confold postgresql >/dev/null
    BIN=$(find_bin)
fi
[ -x "$BIN/initdb" ] || { echo "pg-up: no initdb found after installing postgresql" >&2; exit 1; }

as_owner() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    chown postgres: "$DIR"
    as_owner() { (cd / && runuser -u postgres -- "$@"); }
fi

PASS=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
umask 077
printf '%s\n' "$PASS" > "$DIR/pwfile"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR/pwfile"
as_owner "$BIN/initdb" -D "$DIR/data" -U vbatch --pwfile="$DIR/pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 --no-sync >"$DIR/initdb.log" 2>&1 ||
    { cat "$DIR/initdb.log" >&2; exit 1; }
rm -f "$DIR/pwfile"
as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses='' -c unix_socket_directories='$DIR' -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB" start >/dev/null ||
    { cat "$DIR/server.log" >&2; exit 1; }
PGPASSWORD=$PASS "$BIN/createdb" -h "$DIR" -U vbatch vbatch
echo "postgresql://vbatch:$PASS@/vbatch?host=$DIR"
