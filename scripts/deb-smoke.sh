#!/usr/bin/env bash
# Smoke-test the Debian package on this machine (needs root): build it, install
# it, run /usr/bin/vbatch as the vbatch user, remove and purge it again.
# Prints "ok deb.<check>" / "FAIL deb.<check>" lines and, last,
# "deb-smoke: N passed, N failed". scripts/test.sh runs it when VBATCH_TEST_DEB=1.
set -uo pipefail
cd "$(dirname "$0")/.."
pass=0; fail=0
ok()   { echo "ok   deb.$1"; pass=$((pass+1)); }
bad()  { echo "FAIL deb.$1${2:+: $2}"; fail=$((fail+1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
finish() { echo "deb-smoke: $pass passed, $fail failed"; [ "$fail" = 0 ]; exit $?; }

[ "$(id -u)" = 0 ] || { bad root "needs root (dpkg -i)"; finish; }
if ! make -s deb >/tmp/vbatch-deb-build.log 2>&1; then
    tail -20 /tmp/vbatch-deb-build.log; bad build "make deb failed"; finish
fi
ok build
deb=$(readlink -f build-deb/vbatch.deb)
# A package left by an earlier, interrupted run would hide install problems.
dpkg -s vbatch >/dev/null 2>&1 && dpkg --purge vbatch >/dev/null 2>&1

if dpkg -i "$deb" >/tmp/vbatch-deb-install.log 2>&1; then ok install
else cat /tmp/vbatch-deb-install.log; bad install; finish; fi
check user sh -c 'getent passwd vbatch >/dev/null'
check datadir test "$(stat -c %U /var/lib/vbatch 2>/dev/null)" = vbatch
check binary test -x /usr/bin/vbatch
check units test -f /lib/systemd/system/vbatch.service -a -f /lib/systemd/system/vbatch-worker.service
check ort test -f /usr/lib/vbatch/ort/lib/libonnxruntime.so
if command -v systemd-analyze >/dev/null; then
    # Unit syntax, users, paths and the binary, checked without a running systemd.
    out=$(systemd-analyze verify /lib/systemd/system/vbatch.service /lib/systemd/system/vbatch-worker.service 2>&1)
    if [ -z "$out" ]; then ok units-verify; else echo "$out"; bad units-verify; fi
fi

# Run the installed binary as the unit does (user vbatch, environment file),
# on a data folder of its own under the package's data folder.
data=$(mktemp -d /var/lib/vbatch/smoke.XXXXXX); chown vbatch:vbatch "$data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
(set -a; . /etc/default/vbatch; set +a
 exec runuser -u vbatch -- /usr/bin/vbatch serve --data "$data" --listen "127.0.0.1:$port" --workers 0) >"$log" 2>&1 &
pid=$!
up=0
for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
done
if [ $up = 1 ]; then ok healthz; else cat "$log"; bad healthz "no answer on 127.0.0.1:$port"; fi
key=$(sed -n 's/^api_key: //p' "$log" | head -1)
ws=$(curl -fsS "http://127.0.0.1:$port/?api_key=$key" 2>/dev/null)
check workspace grep -q '"workspace"' <<<"$ws"
check data-owner test "$(stat -c %U "$data/vbatch.db" 2>/dev/null)" = vbatch
kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
# The packaged ONNX Runtime loads: registering a model opens an ORT session.
mdl=$(mktemp -d); cp -r tests/data/models/synth-det "$mdl/"; chmod -R a+rX "$mdl"
if runuser -u vbatch -- /usr/bin/vbatch model register synth-det "$mdl/synth-det" --data "$data" >"$log" 2>&1; then
    ok ort-load
else cat "$log"; bad ort-load; fi
rm -rf "$mdl" "$data" "$log"

if dpkg -r vbatch >/tmp/vbatch-deb-remove.log 2>&1; then ok remove
else cat /tmp/vbatch-deb-remove.log; bad remove; fi
check removed-files test ! -e /usr/bin/vbatch -a ! -e /usr/lib/vbatch -a ! -e /lib/systemd/system/vbatch.service
check conffile-kept test -f /etc/default/vbatch
dpkg --purge vbatch >/dev/null 2>&1
check purged test ! -e /etc/default/vbatch
check data-kept test -d /var/lib/vbatch
finish
