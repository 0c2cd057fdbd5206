#!/usr/bin/env bash
# Builds connectd's container image offline: a static binary, CA
# certificates, and a non-root user, on no base image (the equivalent of
# FROM scratch), imported with `docker import`, so nothing is pulled from a
# registry. Usage: deploy/image/build.sh BINARY TAG VERSION
#
# The image runs `connectd` as UID/GID 65532 ("nonroot") with /data as its
# working directory (a volume for a files sink, a state_file or the
# embedded broker); the default command runs /etc/connectd/connectd.yaml.
set -euo pipefail

binary=$1 tag=$2 version=$3
UID_NONROOT=65532

certs=""
for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
	[ -f "$f" ] && { certs=$f; break; }
done
[ -n "$certs" ] || { echo "image: no CA bundle on this machine (install ca-certificates)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/ssl/certs" "$root/etc/connectd" "$root/data" "$root/tmp"
install -m 0755 "$binary" "$root/connectd"
install -m 0644 "$certs" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/data:/sbin/nologin\n' $UID_NONROOT $UID_NONROOT > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:%d:\n' $UID_NONROOT > "$root/etc/group"
chmod 1777 "$root/tmp"

# Owned by root but for /data, the user's; numeric owners, fixed times:
# the same binary gives the same layer.
tar -C "$root" --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name --exclude=./data -cf "$root.tar" .
tar -C "$root" --numeric-owner --owner=$UID_NONROOT --group=$UID_NONROOT --mtime=@0 -rf "$root.tar" ./data
trap 'rm -rf "$root" "$root.tar"' EXIT

docker import \
	--change "USER $UID_NONROOT:$UID_NONROOT" \
	--change 'WORKDIR /data' \
	--change 'ENTRYPOINT ["/connectd"]' \
	--change 'CMD ["run", "-c", "/etc/connectd/connectd.yaml"]' \
	--change 'EXPOSE 8083' \
	--change "LABEL org.opencontainers.image.title=connectd org.opencontainers.image.version=$version" \
	"$root.tar" "$tag" >/dev/null
echo "image: $tag ($(du -h "$binary" | cut -f1) binary, no base image)"
