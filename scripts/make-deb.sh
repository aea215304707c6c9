#!/usr/bin/env bash
# Build the Debian package from a release build folder (make deb calls it).
#
#   /usr/bin/vbatch                         the binary (looks for ONNX Runtime in /usr/lib/vbatch/ort)
#   /usr/lib/vbatch/ort/lib/libonnxruntime.so   ONNX Runtime, as fetched by scripts/fetch-ort.sh
#   /lib/systemd/system/vbatch.service, vbatch-worker.service
#   /etc/default/vbatch                     the services' environment (a conffile)
#   /usr/share/doc/vbatch/                  README.md, DEPLOY.md, API.md
#
# Depends is computed by dpkg-shlibdeps from the binary's shared libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-deb}
ORT_DIR=${ORT_DIR:-${VBATCH_ORT_DIR:-$HOME/.cache/vbatch/ort}}
bin="$BUILD/vbatch"
[ -x "$bin" ] || { echo "make-deb: $bin is missing (run make deb)" >&2; exit 1; }
[ -f "$ORT_DIR/lib/libonnxruntime.so" ] || { echo "make-deb: no ONNX Runtime in $ORT_DIR (scripts/fetch-ort.sh)" >&2; exit 1; }

arch=$(dpkg --print-architecture)
when=$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date +%Y%m%d)
rev=$(git rev-parse --short=8 HEAD 2>/dev/null || echo local)
version="0.1.0~git${when}.${rev}"
root="$BUILD/deb/root"
rm -rf "$BUILD/deb"; mkdir -p "$root/DEBIAN"

install -D -m 0755 "$bin" "$root/usr/bin/vbatch"
strip --strip-unneeded "$root/usr/bin/vbatch"
install -D -m 0644 "$ORT_DIR/lib/libonnxruntime.so" "$root/usr/lib/vbatch/ort/lib/libonnxruntime.so"
install -D -m 0644 deploy/systemd/vbatch.service "$root/lib/systemd/system/vbatch.service"
install -D -m 0644 deploy/systemd/vbatch-worker.service "$root/lib/systemd/system/vbatch-worker.service"
install -D -m 0644 deploy/vbatch.default "$root/etc/default/vbatch"
for d in README.md docs/DEPLOY.md docs/API.md; do
    install -D -m 0644 "$d" "$root/usr/share/doc/vbatch/$(basename "$d")"
done
for s in postinst prerm postrm; do install -m 0755 "deploy/debian/$s" "$root/DEBIAN/$s"; done
echo /etc/default/vbatch > "$root/DEBIAN/conffiles"

# dpkg-shlibdeps wants a debian/control beside it: give it one in a scratch folder.
# ONNX Runtime is the package's own private library: exclude it.
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/debian"
printf 'Source: vbatch\n\nPackage: vbatch\nArchitecture: any\n' > "$scratch/debian/control"
abs_bin=$(readlink -f "$root/usr/bin/vbatch")
deps=$(cd "$scratch" && dpkg-shlibdeps -O "$abs_bin" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$deps" ] || { echo "make-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
# The bundled library is dlopen()ed, so shlibdeps does not see what it needs;
# it needs libstdc++ and libgcc besides libc.
deps="$deps, libstdc++6, libgcc-s1, adduser, fonts-dejavu-core, tzdata"

size=$(du -sk "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: vbatch
Version: $version
Architecture: $arch
Maintainer: vbatch maintainers <vbatch@localhost>
Installed-Size: $size
Depends: $deps
Section: net
Priority: optional
Description: self-hosted batch computer-vision service
 vbatch stages images and videos into batches, runs Roboflow Workflows
 (ONNX models and transforms) over them and exports JSONL/CSV results.
 It speaks Roboflow's Data Staging and Batch Processing HTTP APIs.
CONTROL
out="$BUILD/vbatch_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$out" >/dev/null
ln -sf "$(basename "$out")" "$BUILD/vbatch.deb"
echo "make-deb: $out"
