#!/usr/bin/env bash
# Start a throwaway S3-compatible object store for the tests, in folder DIR:
#   scripts/s3-up.sh DIR     -> prints shell assignments on stdout:
#        VBATCH_TEST_S3=s3://vbatch-test?endpoint=http://127.0.0.1:PORT&region=default&path_style=1
#        AWS_ACCESS_KEY_ID=...  AWS_SECRET_ACCESS_KEY=...  S3_ENDPOINT=...  S3_BUCKET=...
#        VBATCH_TEST_S3_PRESIGN_CREDENTIALS=DIR/presign.cred (a second user that
#        may only PUT objects: the --blobs-presign-credentials of docs/DEPLOY.md)
#   scripts/s3-down.sh DIR   -> stops it and removes DIR
# The store is Ceph's S3 gateway (radosgw) from Debian on a single-node
# cluster: one monitor, one OSD keeping its data in memory (memstore, 2 GiB),
# no cephx, everything on 127.0.0.1 (S3 on a free port, the monitor on the
# port above it).  Installs Debian's ceph-mon ceph-osd radosgw ceph-common
# uuid-runtime when missing.  Starts in about 10 s on an idle machine.
set -euo pipefail
DIR=${1:?usage: s3-up.sh DIR}
BUCKET=${S3_BUCKET:-vbatch-test}
ACCESS=VBATCHTESTACCESS
SECRET=vbatch-test-secret-key
PACCESS=VBATCHPRESIGNACCESS
PSECRET=vbatch-presign-secret-key
log() { echo "s3-up: $*" >&2; }

need=()
for p in ceph-mon ceph-osd radosgw ceph-common uuid-runtime; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool uuidgen curl; do
    command -v "$b" >/dev/null || { log "'$b' not found after installing"; exit 1; }
done

mkdir -p "$DIR"
C=$(cd "$DIR" && pwd)
mkdir -p "$C"/{run,log,mon,osd,rgw}

# Two free loopback ports next to each other: S3 and the monitor.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
S3_PORT=""
for _ in $(seq 1 50); do
    p=$(( 20000 + RANDOM % 20000 ))
    if port_free "$p" && port_free $((p + 1)); then S3_PORT=$p; break; fi
done
[ -n "$S3_PORT" ] || { log "no free port pair found"; exit 1; }
MON_PORT=$((S3_PORT + 1))
FSID=$(uuidgen)

cat >"$C/ceph.conf" <<EOF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 2147483648
run dir = $C/run
admin socket = $C/run/\$name.asok
pid file = $C/run/\$name.pid
log file = $C/log/\$name.log
mon data = $C/mon/\$cluster-\$id
osd data = $C/osd/\$cluster-\$id
keyring = $C/keyring
osd max object name len = 256
osd max object namespace len = 64
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$S3_PORT tcp_nodelay=1
rgw data = $C/rgw
EOF
echo "$S3_PORT" >"$C/s3_port"

cd "$C"
monmaptool --create --addv a "[v1:127.0.0.1:$MON_PORT]" --fsid "$FSID" monmap >/dev/null
ceph-mon -c ceph.conf --mkfs -i a --monmap monmap
ceph-mon -c ceph.conf -i a
OSD_UUID=$(uuidgen); ID=""
for _ in $(seq 1 60); do
    ID=$(ceph -c ceph.conf --connect-timeout 5 osd new "$OSD_UUID" 2>/dev/null) && break
    sleep 0.5
done
[ -n "$ID" ] || { log "ceph-mon did not come up; logs in $C/log"; exit 1; }
mkdir -p "osd/ceph-$ID"
ceph-osd -c ceph.conf -i "$ID" --mkfs --osd-uuid "$OSD_UUID" 2>/dev/null
# The OSD may exit at once while the ports of a cluster just stopped are
# still being released: try a few times.
for try in 1 2 3 4 5 6; do
    ceph-osd -c ceph.conf -i "$ID" 2>/dev/null && break
    [ $try = 6 ] && { log "ceph-osd did not start; logs in $C/log"; exit 1; }
    sleep 1
done
radosgw -c ceph.conf -n client.rgw.a
radosgw-admin -c ceph.conf user create --uid=vbatch-test --display-name=vbatch-test \
    --access-key="$ACCESS" --secret="$SECRET" >/dev/null 2>&1 ||
    { log "radosgw-admin user create failed; logs in $C/log"; exit 1; }
URL="http://127.0.0.1:$S3_PORT"
for _ in $(seq 1 240); do curl -sf -o /dev/null "$URL/" && break; sleep 0.5; done
curl -sf -o /dev/null "$URL/" || { log "radosgw did not answer on $URL; logs in $C/log"; exit 1; }
# The bucket (a signed PUT; the first ones may fail while the gateway creates
# its pools).  radosgw wants the payload hash header in the signature.
ok=0
for _ in $(seq 1 60); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:default:s3" --user "$ACCESS:$SECRET" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "$URL/$BUCKET") || code=000
    if [ "$code" = 200 ] || [ "$code" = 409 ]; then ok=1; break; fi
    sleep 0.5
done
[ $ok = 1 ] || { log "cannot create bucket '$BUCKET' (HTTP $code); logs in $C/log"; exit 1; }
# The presign user (docs/DEPLOY.md "Presign credentials"): radosgw 16 takes an
# unsigned x-amz-copy-source on a presigned PUT, so the URLs handed to clients
# are signed by a user that may PUT objects and nothing else.  The bucket
# policy lets the owner do everything (also on the presign user's objects)
# and denies the presign user reads and listings (also of its own objects).
radosgw-admin -c ceph.conf user create --uid=vbatch-presign --display-name=vbatch-presign \
    --access-key="$PACCESS" --secret="$PSECRET" >/dev/null 2>&1 ||
    { log "radosgw-admin user create (presign) failed; logs in $C/log"; exit 1; }
cat >"$C/policy.json" <<EOF
{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/vbatch-test"]}, "Action": ["s3:*"],
  "Resource": ["arn:aws:s3:::$BUCKET", "arn:aws:s3:::$BUCKET/*"]},
 {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/vbatch-presign"]}, "Action": ["s3:PutObject"],
  "Resource": ["arn:aws:s3:::$BUCKET/*"]},
 {"Effect": "Deny", "Principal": {"AWS": ["arn:aws:iam:::user/vbatch-presign"]},
  "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:DeleteObject"],
  "Resource": ["arn:aws:s3:::$BUCKET", "arn:aws:s3:::$BUCKET/*"]}]}
EOF
code=$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:default:s3" --user "$ACCESS:$SECRET" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -H "Content-Type: application/json" -X PUT \
    --data-binary @"$C/policy.json" "$URL/$BUCKET?policy=") || code=000
[ "$code" = 204 ] || [ "$code" = 200 ] || { log "cannot set the bucket policy (HTTP $code)"; exit 1; }
printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$PACCESS" "$PSECRET" >"$C/presign.cred"
echo "VBATCH_TEST_S3='s3://$BUCKET?endpoint=$URL&region=default&path_style=1'"
echo "AWS_ACCESS_KEY_ID=$ACCESS"
echo "AWS_SECRET_ACCESS_KEY=$SECRET"
echo "S3_ENDPOINT=$URL"
echo "S3_BUCKET=$BUCKET"
echo "VBATCH_TEST_S3_PRESIGN_CREDENTIALS=$C/presign.cred"
