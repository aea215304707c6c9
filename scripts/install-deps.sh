#!/usr/bin/env bash
# Install what vbatch needs to build, test and run on Debian bookworm.
# Idempotent: packages already present are skipped, and ONNX Runtime is
# fetched with `npm pack` once into a user cache folder and reused.
set -euo pipefail

PKGS=(build-essential pkg-config clang libclang-rt-14-dev
      libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev sqlite3 libpq-dev
      libarchive-dev libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev libwebp-dev
      libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
      libjansson-dev libfreetype-dev fonts-dejavu-core libzbar-dev libqrencode-dev
      python3-numpy python3-imageio python3-pil python3-jsonschema python3-pytest python3-pytest-xdist python3-prometheus-client
      chromium python3-websocket python3-opencv
      curl ca-certificates tzdata
      ceph-mon ceph-osd radosgw ceph-common uuid-runtime)
# ceph-*/radosgw: the throwaway S3 store of the tests (scripts/s3-up.sh).
# python3-pytest-xdist: scripts/test.sh runs each e2e pass on several pytest workers.
# chromium, python3-websocket: the dashboard's browser tests (tests/e2e/test_ui.py, cdp.py).
# python3-opencv: the e2e references of stitch_images, mask_edge_snap and the sinks'
# JPEG attachments (tests/e2e/test_workflow_stitch_snap.py, test_workflow_sinks.py).
# Training the committed test models needs torch; only scripts/train-models.sh asks for it.
if [ "${VBATCH_WITH_TORCH:-0}" = 1 ]; then PKGS+=(python3-torch python3-onnx); fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$(dirname "$0")/fetch-ort.sh"
"$(dirname "$0")/fetch-ocr.sh" || echo "install-deps: PP-OCR weights not fetched (OCR tests will skip)" >&2
"$(dirname "$0")/fetch-clip.sh" || echo "install-deps: CLIP BPE merges not fetched (the real-vocabulary tokenizer tests will skip)" >&2
