#!/usr/bin/env bash
# Builds the test images locally (no registry can be reached):
#   connectd-base:<hash>      debootstrap --variant=minbase bookworm + docker import
#   connectd-kafka:<hash>     FROM base, Kafka's Maven jars copied in
#   connectd-postgres:<hash>  FROM base, PostgreSQL 15 initialised
#   connectd-redis:<hash>     FROM base, redis-server with appendonly
# Each tag is a content hash of the image's inputs (and its base's tag), so an
# image whose tag exists is not built again and a second run takes seconds.
# The tags are written to $CONNECTD_CACHE/images.env, where test/testenv finds them.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

IMAGES_DIR="$TEST_DIR/images"
SUITE=bookworm
VARIANT=minbase
images_env="$CONNECTD_CACHE/images.env"
work="$CONNECTD_CACHE/images"
mkdir -p "$work"

hash_of() { sha256sum | cut -c1-12; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

command -v docker >/dev/null || die "docker is missing; run \`make services\` first"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer; run \`make services\` (starts dockerd)"

# --- base -------------------------------------------------------------------
packages="$(grep -v '^#' "$IMAGES_DIR/base/packages" | grep -v '^[[:space:]]*$' | paste -sd, -)"
base_hash="$(printf 'debootstrap --variant=%s --include=%s %s\n' "$VARIANT" "$packages" "$SUITE" | hash_of)"
base="connectd-base:$base_hash"
if have_image "$base"; then
	log "$base present"
else
	command -v debootstrap >/dev/null || ensure_packages debootstrap:debootstrap
	rootfs="$work/rootfs-$base_hash"
	rm -rf "$rootfs"
	log "debootstrap $SUITE ($packages) into $rootfs; takes about a minute"
	start=$SECONDS
	if ! debootstrap --variant="$VARIANT" --include="$packages" "$SUITE" "$rootfs" >"$work/debootstrap.log" 2>&1; then
		show_log_tail "$work/debootstrap.log"
		[ -f "$rootfs/debootstrap/debootstrap.log" ] && show_log_tail "$rootfs/debootstrap/debootstrap.log"
		die "debootstrap failed"
	fi
	# Trim what a test image never needs: package caches, the cluster the
	# postgresql package creates (the postgres image makes its own).
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
		"$rootfs"/var/lib/postgresql/15/main "$rootfs"/etc/postgresql/15/main
	log "debootstrap done in $((SECONDS - start))s; importing as $base"
	tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$base" >/dev/null
	rm -rf "$rootfs"
fi

# --- images FROM base -------------------------------------------------------
# build NAME: context = test/images/NAME/* (+ Kafka's jars and log4j config).
build() {
	local name="$1" ctx="$work/ctx-$1" h tag
	rm -rf "$ctx"
	mkdir -p "$ctx"
	cp -a "$IMAGES_DIR/$name/." "$ctx/"
	if [ "$name" = kafka ]; then
		[ -f "$KAFKA_HOME/.complete" ] || "$TEST_DIR/scripts/kafka-jars.sh"
		cp -al "$KAFKA_HOME/libs" "$ctx/libs" 2>/dev/null || cp -a "$KAFKA_HOME/libs" "$ctx/libs"
		cp "$TEST_DIR/kafka/log4j2.properties" "$ctx/"
	fi
	h="$( (echo "$base"; cd "$ctx" && find . -type f | LC_ALL=C sort | xargs sha256sum) | hash_of)"
	tag="connectd-$name:$h"
	if have_image "$tag"; then
		log "$tag present"
	else
		log "building $tag"
		if ! DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" -t "$tag" "$ctx" >"$work/build-$name.log" 2>&1; then
			show_log_tail "$work/build-$name.log"
			die "docker build of $tag failed"
		fi
	fi
	rm -rf "$ctx"
	echo "$tag"
}

kafka="$(build kafka)"
postgres="$(build postgres)"
redis="$(build redis)"

tmp="$images_env.tmp"
cat >"$tmp" <<ENV
# Written by test/scripts/images.sh; read by test/testenv.
CONNECTD_BASE_IMAGE=$base
CONNECTD_KAFKA_IMAGE=$kafka
CONNECTD_POSTGRES_IMAGE=$postgres
CONNECTD_REDIS_IMAGE=$redis
ENV
mv "$tmp" "$images_env"
log "images ready ($images_env):"
grep -v '^#' "$images_env" >&2
