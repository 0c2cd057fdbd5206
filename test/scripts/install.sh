#!/usr/bin/env bash
# Installs the Debian packages the test services need, only those missing,
# with one `apt-get update` first and only if something must be installed.
#   install.sh services   Java, Maven, PostgreSQL 15, Redis, Docker engine
#   install.sh images     Docker engine and debootstrap
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

need=()
for what in "${@:-services}"; do
	case "$what" in
	services)
		need+=(java:openjdk-17-jre-headless mvn:maven
			/usr/lib/postgresql/15/bin/postgres:postgresql-15
			redis-server:redis-server redis-cli:redis-tools
			dockerd:docker.io) ;;
	images) need+=(dockerd:docker.io debootstrap:debootstrap) ;;
	*) die "unknown set '$what' (want: services, images)" ;;
	esac
done
ensure_packages "${need[@]}"
log "packages present"
