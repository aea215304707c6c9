#!/usr/bin/env bash
# The main job, end to end on the embedded default: install what is missing,
# build vbatch, start it with a fresh data folder (SQLite + local blobs),
# stage sample images, run a detection workflow over them as a batch job,
# follow its progress, download the export and print where the results are.
#
#   scripts/demo.sh [--images N] [--keep-running]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: checking the Debian packages and ONNX Runtime (the first run installs them: a few minutes)" >&2
scripts/install-deps.sh
echo "demo: building build/vbatch (about 30 s the first time)" >&2
if ! make -j2 all >/tmp/vbatch-demo-build.log 2>&1; then
    tail -30 /tmp/vbatch-demo-build.log >&2
    echo "demo: the build failed; the whole log is in /tmp/vbatch-demo-build.log" >&2
    exit 1
fi
exec /usr/bin/python3 scripts/demo.py "$@"
