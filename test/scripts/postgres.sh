#!/usr/bin/env bash
# Runs PostgreSQL 15 (Debian's package) on 127.0.0.1:$PG_PORT (5432) with a data
# dir under $CONNECTD_RUN/postgres, superuser `connectd` (password `connectd`,
# trust on loopback) and max_prepared_transactions=64 for two-phase commit.
#   postgres.sh start|stop|status|clean
# As root, the server runs as the `postgres` user (PostgreSQL refuses root).
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

cmd="${1:-start}"
PG_PORT="${PG_PORT:-5432}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
dir="$CONNECTD_RUN/postgres"
data="$dir/data"
logfile="$dir/postgres.log"
pidfile="$dir/postgres.pid"

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

write_config() {
	as_pg tee "$data/connectd.conf" >/dev/null <<CONF
# Written by test/scripts/postgres.sh on every start; edits are lost.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir/socket'
max_prepared_transactions = 64
max_connections = 200
shared_buffers = 128MB
CONF
	grep -q "^include 'connectd.conf'" "$data/postgresql.conf" ||
		echo "include 'connectd.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
}

psql_check() {
	PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$PG_PORT" -U connectd -d postgres "$@"
}

# server_pid prints the postmaster's PID from its own pid file.
record_pid() {
	[ -s "$data/postmaster.pid" ] && head -n1 "$data/postmaster.pid" >"$pidfile"
}

case "$cmd" in
start)
	[ -x "$PG_BIN/postgres" ] || ensure_packages "$PG_BIN/postgres:postgresql-15"
	mkdir -p "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "user 'postgres' missing (the postgresql-15 package creates it)"
		chown postgres:postgres "$dir"
	fi
	as_pg mkdir -p "$dir/socket"
	if [ ! -f "$data/PG_VERSION" ]; then
		log "initdb $data"
		as_pg "$PG_BIN/initdb" -D "$data" -U connectd --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ show_log_tail "$dir/initdb.log"; die "initdb failed"; }
	fi
	write_config
	if as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		log "already running (127.0.0.1:$PG_PORT)"
	else
		port_open "$PG_PORT" && die "port $PG_PORT is taken by a process 'make services' did not start ($(who_listens "$PG_PORT")); stop it or set PG_PORT"
		log "starting on 127.0.0.1:$PG_PORT (log: $logfile)"
		touch "$logfile"
		[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$logfile"
		as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start >/dev/null ||
			{ show_log_tail "$logfile"; die "pg_ctl start failed"; }
	fi
	record_pid
	wait_until 60 "PostgreSQL on 127.0.0.1:$PG_PORT" "$logfile" "$pidfile" psql_check -c 'SELECT 1'
	psql_check -c "ALTER ROLE connectd PASSWORD 'connectd'" >/dev/null
	mpt="$(psql_check -c 'SHOW max_prepared_transactions')"
	[ "${mpt:-0}" -gt 0 ] || die "max_prepared_transactions is $mpt; restart with: $0 stop && $0 start"
	log "PostgreSQL $(psql_check -c 'SHOW server_version') ready at 127.0.0.1:$PG_PORT (max_prepared_transactions=$mpt)"
	;;
stop)
	if [ -f "$data/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		log "stopping"
		as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
	else
		log "not running"
	fi
	rm -f "$pidfile"
	;;
status)
	if [ -f "$data/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		echo "postgres: running pid $(head -n1 "$data/postmaster.pid") 127.0.0.1:$PG_PORT"
	else
		echo "postgres: stopped"
	fi
	;;
clean)
	"$0" stop
	rm -rf "$dir"
	log "removed $dir"
	;;
*) die "unknown command '$cmd' (want start, stop, status, clean)" ;;
esac
