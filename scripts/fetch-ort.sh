#!/usr/bin/env bash
# Fetch the ONNX Runtime C library and headers from the npm registry with
# `npm pack` (download only, no install scripts), verify the tarballs'
# integrity and unpack them into $VBATCH_ORT_DIR (default ~/.cache/vbatch/ort).
# Users who have their own build point VBATCH_ORT_DIR at it instead.
set -euo pipefail
ORT_DIR="${VBATCH_ORT_DIR:-$HOME/.cache/vbatch/ort}"
if [ -f "$ORT_DIR/lib/libonnxruntime.so" ] && [ -f "$ORT_DIR/include/onnxruntime_c_api.h" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "fetch-ort: npm is required" >&2; exit 1; }
# One package carries both the headers and a Linux x64 library (1.29, API 29).
PKG="com.github.asus4.onnxruntime@0.4.9"
dl="$ORT_DIR/dl"; mkdir -p "$dl" "$ORT_DIR/lib" "$ORT_DIR/include"
cd "$dl"
if ! ls com.github.asus4.onnxruntime-*.tgz >/dev/null 2>&1; then
    echo "fetch-ort: npm pack $PKG" >&2
    npm pack --silent "$PKG" >/dev/null
fi
tgz=$(ls com.github.asus4.onnxruntime-*.tgz | head -1)
want=$(npm view "$PKG" dist.integrity 2>/dev/null || true)
if [ -n "$want" ]; then
    have="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    [ "$have" = "$want" ] || { echo "fetch-ort: integrity mismatch for $tgz" >&2; rm -f "$tgz"; exit 1; }
fi
rm -rf x && mkdir x && tar -xzf "$tgz" -C x
cp x/package/Plugins/Linux/x64/libonnxruntime.so* "$ORT_DIR/lib/"
hdr=x/package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64_x86_64-simulator/onnxruntime.framework/Headers
cp "$hdr"/*.h "$ORT_DIR/include/"
rm -rf x
ls "$ORT_DIR/lib/libonnxruntime.so" >/dev/null
echo "fetch-ort: ONNX Runtime in $ORT_DIR" >&2
