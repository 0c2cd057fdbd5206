#!/usr/bin/env bash
# Puts Prometheus' promtool at $CONNECTD_CACHE/prometheus/promtool for the
# alert-rule test (deploy/monitoring_test.go): taken out of Debian's
# prometheus package with dpkg-deb, not installed, so no Prometheus server
# or service comes with it. Idempotent.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

dest="$CONNECTD_CACHE/prometheus/promtool"
if [ -x "$dest" ]; then
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get download -qq prometheus >/dev/null 2>&1; then
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	apt-get download -qq prometheus >/dev/null 2>&1 || die "apt-get download prometheus failed"
fi
dpkg-deb -x prometheus_*.deb pkg
mkdir -p "$(dirname "$dest")"
install -m 0755 pkg/usr/bin/promtool "$dest"
log "$("$dest" --version 2>&1 | head -1) at $dest"
