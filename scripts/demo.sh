#!/usr/bin/env bash
# The main job, end to end on the embedded default, with vbatch's own client
# commands: install what is missing, build vbatch, start it with a fresh data
# folder (SQLite + local blobs), stage sample images (vbatch batch upload),
# run a detection workflow over them as a batch job and follow it (vbatch job
# start --watch), download and unpack the export (vbatch batch export) and
# score the results; then read the text of sign-like pictures with PP-OCR
# (a second job, workflow read-text) when scripts/fetch-ocr.sh got the weights.  Each step says what it does before it starts.
#
#   scripts/demo.sh [--images N] [--keep-running]
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGES=120
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --images) IMAGES=$2; shift 2 ;;
    --keep-running) KEEP=1; shift ;;
    *) echo "usage: scripts/demo.sh [--images N] [--keep-running]" >&2; exit 2 ;;
    esac
done
say() { printf 'demo: %s\n' "$*" >&2; }

# A line every 10 s while a long step runs silently (apt-get, npm pack).
ticker() {
    local t=0
    while sleep 10; do
        t=$((t + 10))
        say "   … $1, ${t} s so far"
    done
}
say "1/7 checking the Debian packages and ONNX Runtime (a first run installs them: a few minutes)"
ticker "still installing" &
TICK=$!
scripts/install-deps.sh
kill "$TICK" 2>/dev/null || true
wait "$TICK" 2>/dev/null || true

total=$(find src -name '*.c' | wc -l)
say "2/7 building build/vbatch ($total C files; about 30 s the first time, the log is /tmp/vbatch-demo-build.log)"
set +e
make -j2 all 2>&1 | tee /tmp/vbatch-demo-build.log |
    awk -v total="$total" -v tty="$([ -t 2 ] && echo 1 || echo 0)" '
        / -c src\/.*\.c / { n++
            if (tty) printf "\r  compiled %d/%d", n, total > "/dev/stderr"
            else if (n % 25 == 0) printf "  compiled %d/%d\n", n, total > "/dev/stderr"
            fflush("/dev/stderr") }
        END { if (n) printf "%s  compiled %d file(s)\n", (tty ? "\r" : ""), n > "/dev/stderr" }'
built=${PIPESTATUS[0]}
set -e
if [ "$built" != 0 ]; then
    tail -30 /tmp/vbatch-demo-build.log >&2
    say "the build failed; the whole log is in /tmp/vbatch-demo-build.log"
    exit 1
fi
B=$PWD/build/vbatch

DATA=$PWD/var/demo
rm -rf "$DATA"
mkdir -p "$DATA"
OCR_DIR=${VBATCH_OCR_DIR:-$HOME/.cache/vbatch/ocr/ppocr-v4}
HAVE_OCR=0
if [ -f "$OCR_DIR/det.onnx" ] && [ -f "$OCR_DIR/rec.onnx" ] && [ -f "$OCR_DIR/dict.txt" ]; then
    mkdir -p "$DATA/models" && ln -s "$OCR_DIR" "$DATA/models/pp_ocr" && HAVE_OCR=1
fi
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
say "3/7 starting the server on 127.0.0.1:$PORT (data folder $DATA, its log $DATA/server.log)"
"$B" serve --listen "127.0.0.1:$PORT" --data "$DATA" --models-dir tests/data/models \
    --workflows-dir examples/workflows --quiet >"$DATA/server.out" 2>"$DATA/server.log" &
SRV=$!
stop() { [ "$KEEP" = 1 ] || { kill "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null || true; }; }
trap stop EXIT
for _ in $(seq 100); do
    grep -q '^listening:' "$DATA/server.out" 2>/dev/null && break
    kill -0 "$SRV" 2>/dev/null || { say "the server did not start, see $DATA/server.log"; exit 1; }
    sleep 0.1
done
export VBATCH_SERVER=http://127.0.0.1:$PORT
VBATCH_API_KEY=$(awk '/^api_key:/{print $2}' "$DATA/server.out")
export VBATCH_API_KEY
say "   workspace '$(awk '/^workspace:/{print $2}' "$DATA/server.out")', API key in VBATCH_API_KEY; the client commands below read VBATCH_SERVER and VBATCH_API_KEY"
say "   model: 'synth-det', a small detector the tests train on synthetic pictures; it knows only circles,"
say "   squares and triangles on flat backgrounds (tests/data/models/synth-det)"

say "4/7 making $IMAGES synthetic pictures and 2 photos in $DATA/images, then staging them:"
/usr/bin/python3 scripts/demo.py make "$DATA/images" "$DATA/truth.json" --images "$IMAGES"
say "   \$ vbatch batch upload $DATA/images --batch demo-input"
"$B" batch upload "$DATA/images" --batch demo-input --name "demo input"

say "5/7 running the workflow 'detect-shapes' (examples/workflows) over the batch:"
say "   \$ vbatch job start --batch demo-input --workflow detect-shapes --persist-images --workers 2"
JOB=$("$B" job start --batch demo-input --workflow detect-shapes --persist-images --workers 2 \
    --name "vbatch demo" | awk '/^job: /{print $2}')
say "   \$ vbatch job watch $JOB"
"$B" job watch "$JOB"

OUT=$DATA/results/$JOB
say "6/7 downloading the results:"
say "   \$ vbatch batch export --job $JOB --out $OUT"
"$B" batch export --job "$JOB" --out "$OUT"
/usr/bin/python3 scripts/demo.py score "$DATA/truth.json" "$OUT"
echo "RESULTS: $OUT"

if [ "$HAVE_OCR" = 1 ]; then
    say "7/7 reading text: 8 sign-like pictures of known words, the workflow 'read-text' (PP-OCRv4, model pp_ocr):"
    /usr/bin/python3 scripts/demo.py make-text "$DATA/text" "$DATA/text-truth.json"
    "$B" batch upload "$DATA/text" --batch demo-text --name "demo text"
    say "   \$ vbatch job start --batch demo-text --workflow read-text --persist-images"
    TJOB=$("$B" job start --batch demo-text --workflow read-text --persist-images --workers 2 \
        --name "vbatch demo OCR" | awk '/^job: /{print $2}')
    "$B" job watch "$TJOB"
    TOUT=$DATA/results/$TJOB
    "$B" batch export --job "$TJOB" --out "$TOUT"
    /usr/bin/python3 scripts/demo.py score-text "$DATA/text-truth.json" "$TOUT"
    echo "OCR RESULTS: $TOUT"
else
    say "7/7 skipped: no PP-OCR weights in $OCR_DIR (scripts/fetch-ocr.sh could not fetch them)"
fi
if [ "$KEEP" = 1 ]; then
    echo "server left running (pid $SRV) at $VBATCH_SERVER; export VBATCH_SERVER=$VBATCH_SERVER VBATCH_API_KEY=$VBATCH_API_KEY"
    echo "then try: $B job list; $B batch list; $B job logs $JOB"
fi
