#!/usr/bin/env bash
# Runs the Docker engine (Debian's docker.io) in the background for the
# testcontainers suites, logging to $CONNECTD_RUN/dockerd/dockerd.log.
# --ip=127.0.0.1 makes published container ports listen on loopback only.
#   dockerd.sh start|stop|status
# start is idempotent: an engine that already answers `docker info` is used as is.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

cmd="${1:-start}"
dir="$CONNECTD_RUN/dockerd"
logfile="$dir/dockerd.log"
pidfile="$dir/dockerd.pid"

docker_ok() { timeout 10 docker info >/dev/null 2>&1; }

case "$cmd" in
start)
	command -v dockerd >/dev/null || ensure_packages dockerd:docker.io
	if docker_ok; then
		log "Docker engine already answers"
		exit 0
	fi
	[ "$(id -u)" -eq 0 ] || die "starting dockerd needs root"
	pid_alive "$pidfile" || {
		log "starting dockerd (log: $logfile)"
		start_background "$pidfile" "$logfile" dockerd --ip=127.0.0.1 \
			--host=unix:///var/run/docker.sock --pidfile="$dir/dockerd.self.pid"
	}
	wait_until 60 "dockerd" "$logfile" "$pidfile" docker_ok
	log "Docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) ready (storage driver $(docker info --format '{{.Driver}}'))"
	;;
stop) stop_pidfile "$pidfile" "dockerd" 60 ;;
status)
	if docker_ok; then echo "dockerd: running${pidfile:+ (pid $(cat "$pidfile" 2>/dev/null))}"; else echo "dockerd: stopped"; fi
	;;
*) die "unknown command '$cmd' (want start, stop, status)" ;;
esac
