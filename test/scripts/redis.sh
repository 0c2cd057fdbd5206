#!/usr/bin/env bash
# Runs Redis 7 (Debian's redis-server) on 127.0.0.1:$REDIS_PORT (6379) with
# appendonly yes and appendfsync $REDIS_APPENDFSYNC (always: an acknowledged
# write survives a crash, which the exactly-once Redis sink relies on).
#   redis.sh start|stop|status|clean
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

cmd="${1:-start}"
REDIS_PORT="${REDIS_PORT:-6379}"
REDIS_APPENDFSYNC="${REDIS_APPENDFSYNC:-always}"
dir="$CONNECTD_RUN/redis"
logfile="$dir/redis.log"
pidfile="$dir/redis.pid"

cli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
pong() { [ "$(cli ping 2>/dev/null)" = PONG ]; }

case "$cmd" in
start)
	ensure_packages redis-server:redis-server redis-cli:redis-tools
	mkdir -p "$dir/data"
	cat >"$dir/redis.conf" <<CONF
# Written by test/scripts/redis.sh on every start; edits are lost.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $pidfile
logfile $logfile
dir $dir/data
appendonly yes
appendfsync $REDIS_APPENDFSYNC
aof-load-truncated no
# The AOF is the persistence the tests rely on; RDB snapshots of it only
# fork and write the whole dataset again.
save ""
CONF
	if pid_alive "$pidfile"; then
		log "already running (pid $(cat "$pidfile"), 127.0.0.1:$REDIS_PORT)"
	else
		port_open "$REDIS_PORT" && die "port $REDIS_PORT is taken by a process 'make services' did not start ($(who_listens "$REDIS_PORT")); stop it or set REDIS_PORT"
		# This Redis is the tests' scratch space: every key is under a
		# test's own prefix and deleted when the test ends. A test that
		# did not end (killed, timed out) leaves its keys, and they
		# outlived every later run: CI found 7 million of them from
		# earlier runs, and each test's cleanup, a SCAN of the whole
		# keyspace, then ran out of time and left its own. So a server
		# this script starts begins empty. (It is never restarted under
		# a running test: the tests that kill a Redis start their own.)
		if [ -d "$dir/data" ] && [ -n "$(ls -A "$dir/data")" ]; then
			log "removing the data of an earlier run ($(du -sh "$dir/data" | cut -f1))"
			rm -rf "$dir/data"
			mkdir -p "$dir/data"
		fi
		log "starting on 127.0.0.1:$REDIS_PORT (log: $logfile)"
		redis-server "$dir/redis.conf" || { show_log_tail "$logfile"; die "redis-server failed to start"; }
	fi
	wait_until 30 "Redis on 127.0.0.1:$REDIS_PORT" "$logfile" "" pong
	pid_alive "$pidfile" || { show_log_tail "$logfile"; die "redis-server exited"; }
	[ "$(cli config get appendonly | tail -n1)" = yes ] || die "appendonly is not yes"
	log "Redis $(cli info server | sed -n 's/^redis_version:\([^\r]*\).*/\1/p') ready at 127.0.0.1:$REDIS_PORT (appendonly yes, appendfsync $REDIS_APPENDFSYNC)"
	;;
stop) stop_pidfile "$pidfile" redis-server 30 ;;
status)
	if pid_alive "$pidfile"; then echo "redis: running pid $(cat "$pidfile") 127.0.0.1:$REDIS_PORT"; else echo "redis: stopped"; fi
	;;
clean)
	stop_pidfile "$pidfile" redis-server 30
	rm -rf "$dir"
	log "removed $dir"
	;;
*) die "unknown command '$cmd' (want start, stop, status, clean)" ;;
esac
