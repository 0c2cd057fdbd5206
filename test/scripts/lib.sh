# shellcheck shell=bash disable=SC2034 # ROOT_DIR, KAFKA_HOME, ...: used by the sourcing scripts
# Shared helpers for the test-service scripts in this directory. Sourced, not run.
#
# Layout (all outside the repository):
#   $CONNECTD_CACHE (default ~/.cache/connectd): Kafka jars, images.env, image build scratch.
#   $CONNECTD_RUN   (default /var/tmp/connectd): data dirs, logs and PID files of the
#                   services `make services` starts; world-traversable so the
#                   postgres user can own its data dir below it.

set -euo pipefail

TEST_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT_DIR="$(cd "$TEST_DIR/.." && pwd)"
CONNECTD_CACHE="${CONNECTD_CACHE:-$HOME/.cache/connectd}"
CONNECTD_RUN="${CONNECTD_RUN:-/var/tmp/connectd}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_HOME="$CONNECTD_CACHE/kafka-$KAFKA_VERSION"
SCRIPT_NAME="$(basename "$0" .sh)"

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 1; }

# as_root runs a command as root (directly, or through sudo for other users).
as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_packages CMD_OR_PATH:PACKAGE ... installs the Debian packages whose
# command (or file path) is missing, with a single `apt-get update` first and
# only when something must be installed.
ensure_packages() {
	local want=() spec probe pkg
	for spec in "$@"; do
		probe="${spec%%:*}"
		pkg="${spec#*:}"
		if [[ "$probe" == /* ]]; then
			[ -e "$probe" ] && continue
		else
			command -v "$probe" >/dev/null 2>&1 && continue
		fi
		want+=("$pkg")
	done
	[ "${#want[@]}" -eq 0 ] && return 0
	log "installing missing packages: ${want[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
}

# port_open PORT [HOST]: true when something accepts TCP connections there.
port_open() {
	(exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null
}

# who_listens PORT: the listening socket and process on PORT, for messages.
who_listens() {
	ss -ltnpH "sport = :$1" 2>/dev/null | awk '{print $4, $6}' | paste -sd' ' - || true
}

# pid_alive PIDFILE: true when the file names a running process.
pid_alive() {
	local pid
	[ -s "$1" ] || return 1
	pid="$(head -n1 "$1")"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# show_log_tail FILE: the last lines of a service log, for failure messages.
show_log_tail() {
	if [ -s "$1" ]; then
		printf '%s: ---- last 40 lines of %s ----\n' "$SCRIPT_NAME" "$1" >&2
		tail -n 40 "$1" >&2
		printf '%s: ----\n' "$SCRIPT_NAME" >&2
	else
		printf '%s: (no log at %s)\n' "$SCRIPT_NAME" "$1" >&2
	fi
}

# wait_until TIMEOUT_S WHAT LOGFILE PIDFILE CMD...: polls CMD every half second.
# Fails (with the log tail) when the timeout passes or the process in PIDFILE
# dies; PIDFILE may be "" when there is no process to watch.
wait_until() {
	local timeout="$1" what="$2" logfile="$3" pidfile="$4"
	shift 4
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if [ -n "$pidfile" ] && ! pid_alive "$pidfile"; then
			show_log_tail "$logfile"
			die "$what: process exited before it became ready (log: $logfile)"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			show_log_tail "$logfile"
			die "$what: not ready after ${timeout}s (log: $logfile)"
		fi
		sleep 0.5
	done
}

# stop_pidfile PIDFILE WHAT [TIMEOUT_S]: SIGTERM, wait, then SIGKILL.
stop_pidfile() {
	local pidfile="$1" what="$2" timeout="${3:-30}" pid
	if ! pid_alive "$pidfile"; then
		rm -f "$pidfile"
		log "$what: not running"
		return 0
	fi
	pid="$(head -n1 "$pidfile")"
	log "$what: stopping pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + timeout))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "$what: still running after ${timeout}s, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	rm -f "$pidfile"
}

# start_background PIDFILE LOGFILE CMD...: starts CMD detached in its own
# session (so `make` returning does not stop it) and records its PID.
start_background() {
	local pidfile="$1" logfile="$2"
	shift 2
	mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
	setsid nohup "$@" >>"$logfile" 2>&1 </dev/null &
	echo $! >"$pidfile"
}

mkdir -p "$CONNECTD_CACHE"
mkdir -p "$CONNECTD_RUN"
chmod 755 "$CONNECTD_RUN" 2>/dev/null || true
