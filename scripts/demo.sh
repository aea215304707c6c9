#!/usr/bin/env bash
# The main job, end to end on the embedded default: install what is missing,
# build vbatch, start it with a fresh data folder (SQLite + local blobs),
# stage sample images, run a detection workflow over them as a batch job,
# follow its progress, download the export and print where the results are.
#
#   scripts/demo.sh [--images N] [--keep-running]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make -j2 all >/dev/null
exec /usr/bin/python3 scripts/demo.py "$@"
