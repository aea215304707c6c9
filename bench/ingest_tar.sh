#!/bin/sh
# Tar-shard ingest MB/s / dd MB/s of the same bytes (issue 12; local blobs).
#
#   bench/ingest_tar.sh [VBATCH_BIN] [ingest_tar.py options]
#
# Builds the release binary (build/vbatch) unless a binary is given, then
# runs bench/ingest_tar.py: 20 shards x 500 images of ~16 KB, 4 parallel
# PUTs to signed URLs, until every image is counted; dd of the same bytes
# with conv=fsync to the same disk before and after each round.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
if [ $# -gt 0 ] && [ -x "$1" ]; then
    bin=$1
    shift
else
    make -C "$repo" -j2 all >/dev/null
    bin=$repo/build/vbatch
fi
# the e2e harness needs pytest's python for its imports only
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" "$here/ingest_tar.py" --bin "$bin" "$@"
