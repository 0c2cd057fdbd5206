#!/usr/bin/env bash
# Runs Apache Kafka (KRaft, from the Maven jars) on 127.0.0.1.
#   kafka.sh start|stop|status|clean [single|cluster|secure]
# single  (default): one combined broker+controller, client port $KAFKA_PORT (9192).
# cluster: three combined nodes for failover tests, client ports
#          $KAFKA_CLUSTER_BASE_PORT+0..2 (19092-19094), controllers +100 (19192-19194).
# secure:  one combined node for the TLS/SASL tests (test/kafkasecure), beside
#          the others: PLAINTEXT on $KAFKA_SECURE_PORT (9392), SASL_SSL on
#          $KAFKA_SECURE_SSL_PORT (9393; SCRAM-SHA-512, SCRAM-SHA-256, and OAUTHBEARER
#          with Kafka's validator of unsecured (alg none) JWTs), controller
#          on $KAFKA_SECURE_CONTROLLER_PORT (9394). TLS comes from the PEM files
#          ca.pem, server.pem and server-key.pem (unencrypted PKCS#8, as test/pki
#          writes them) in $KAFKA_SECURE_TLS_DIR, which start needs; client
#          certificates are $KAFKA_SECURE_CLIENT_AUTH (required, requested or
#          none; default required). The SCRAM user $KAFKA_SECURE_USER (connectd)
#          with password $KAFKA_SECURE_PASSWORD is written into the metadata log
#          by `kafka-storage format --add-scram`. Each start of a stopped secure
#          node formats a fresh data dir, so new certificates and credentials
#          always take effect and no earlier test's topics are left.
# start is idempotent: it starts only the nodes not running (so it also brings
# back a node a test killed) and then checks that a client can create a topic
# and commit a transaction. PIDs are in <node dir>/kafka.pid, logs in kafka.log.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

cmd="${1:-start}"
mode="${2:-single}"
KAFKA_PORT="${KAFKA_PORT:-9192}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9193}"
KAFKA_CLUSTER_BASE_PORT="${KAFKA_CLUSTER_BASE_PORT:-19092}"
KAFKA_SECURE_PORT="${KAFKA_SECURE_PORT:-9392}"
KAFKA_SECURE_SSL_PORT="${KAFKA_SECURE_SSL_PORT:-9393}"
KAFKA_SECURE_CONTROLLER_PORT="${KAFKA_SECURE_CONTROLLER_PORT:-9394}"
KAFKA_SECURE_USER="${KAFKA_SECURE_USER:-connectd}"
KAFKA_SECURE_PASSWORD="${KAFKA_SECURE_PASSWORD:-connectd-secret}"
KAFKA_SECURE_CLIENT_AUTH="${KAFKA_SECURE_CLIENT_AUTH:-required}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-120}"

case "$mode" in
single)
	base="$CONNECTD_RUN/kafka"
	nodes=(1)
	broker_port() { echo "$KAFKA_PORT"; }
	controller_port() { echo "$KAFKA_CONTROLLER_PORT"; }
	rf=1 min_isr=1 ;;
cluster)
	base="$CONNECTD_RUN/kafka-cluster"
	nodes=(1 2 3)
	broker_port() { echo $((KAFKA_CLUSTER_BASE_PORT + $1 - 1)); }
	controller_port() { echo $((KAFKA_CLUSTER_BASE_PORT + 100 + $1 - 1)); }
	rf=3 min_isr=2 ;;
secure)
	base="$CONNECTD_RUN/kafka-secure"
	nodes=(1)
	broker_port() { echo "$KAFKA_SECURE_PORT"; }
	controller_port() { echo "$KAFKA_SECURE_CONTROLLER_PORT"; }
	rf=1 min_isr=1 ;;
*) die "unknown mode '$mode' (want single, cluster or secure)" ;;
esac

brokers() {
	local n out=()
	for n in "${nodes[@]}"; do out+=("127.0.0.1:$(broker_port "$n")"); done
	(IFS=,; echo "${out[*]}")
}

voters() {
	local n out=()
	for n in "${nodes[@]}"; do out+=("$n@127.0.0.1:$(controller_port "$n")"); done
	(IFS=,; echo "${out[*]}")
}

write_config() { # node
	local n="$1" dir="$base/node-$1"
	cat >"$dir/server.properties" <<PROPS
# Written by test/scripts/kafka.sh on every start; edits are lost.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$(broker_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")$(ssl_listener)
advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "$n")$(ssl_listener)
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT$([ "$mode" != secure ] || echo ",SASL_SSL:SASL_SSL")
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
# Keep every record: window results carry their window's event time, which
# many tests set in 1970, and the default 7-day retention would delete them
# at its next check (every 5 min), in the middle of a test.
log.retention.ms=-1
PROPS
	[ "$mode" = secure ] || return 0
	# The SASL_SSL listener. Its TLS settings carry the listener's prefix,
	# so the PLAINTEXT and controller listeners stay untouched. The PEM
	# keystore is the key followed by the certificate, in one file.
	cat "$KAFKA_SECURE_TLS_DIR/server-key.pem" "$KAFKA_SECURE_TLS_DIR/server.pem" >"$dir/keystore.pem"
	chmod 600 "$dir/keystore.pem"
	cat >>"$dir/server.properties" <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,OAUTHBEARER
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$dir/keystore.pem
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$KAFKA_SECURE_TLS_DIR/ca.pem
listener.name.sasl_ssl.ssl.client.auth=$KAFKA_SECURE_CLIENT_AUTH
PROPS
}

# ssl_listener is the SASL_SSL listener of the secure mode, after a comma;
# nothing in the other modes.
ssl_listener() {
	[ "$mode" = secure ] && echo ",SASL_SSL://127.0.0.1:$KAFKA_SECURE_SSL_PORT"
	return 0
}

# check_secure_env fails early, before any JVM starts, on what the secure
# mode cannot work without.
check_secure_env() {
	[ -n "${KAFKA_SECURE_TLS_DIR:-}" ] || die "secure: set KAFKA_SECURE_TLS_DIR to a directory with ca.pem, server.pem and server-key.pem"
	local f
	for f in ca.pem server.pem server-key.pem; do
		[ -s "$KAFKA_SECURE_TLS_DIR/$f" ] || die "secure: $KAFKA_SECURE_TLS_DIR/$f is missing or empty"
	done
	case "$KAFKA_SECURE_CLIENT_AUTH" in
	required | requested | none) ;;
	*) die "secure: KAFKA_SECURE_CLIENT_AUTH='$KAFKA_SECURE_CLIENT_AUTH' (want required, requested or none)" ;;
	esac
	# --add-scram parses name=...,password=... itself, with no way to
	# quote a comma or a bracket.
	[[ "$KAFKA_SECURE_USER" =~ ^[A-Za-z0-9._-]+$ && "$KAFKA_SECURE_PASSWORD" =~ ^[A-Za-z0-9._-]+$ ]] ||
		die "secure: KAFKA_SECURE_USER and KAFKA_SECURE_PASSWORD may hold only letters, digits, '.', '_' and '-'"
}

read -r -a heap_opts <<<"$KAFKA_HEAP_OPTS"
JAVA=(java "${heap_opts[@]}" -XX:+UseG1GC -Djava.awt.headless=true
	"-Dlog4j2.configurationFile=$TEST_DIR/kafka/log4j2.properties" -cp "$KAFKA_HOME/libs/*")

start_node() { # node
	local n="$1" dir="$base/node-$1" port
	port="$(broker_port "$n")"
	if pid_alive "$dir/kafka.pid"; then
		log "node $n: already running (pid $(cat "$dir/kafka.pid"), 127.0.0.1:$port)"
		return 0
	fi
	local p
	for p in "$port" "$(controller_port "$n")" $([ "$mode" != secure ] || echo "$KAFKA_SECURE_SSL_PORT"); do
		port_open "$p" || continue
		die "node $n: port $p is taken by a process 'make services' did not start ($(who_listens "$p")); stop it or set KAFKA_PORT/KAFKA_CLUSTER_BASE_PORT/KAFKA_SECURE_*PORT"
	done
	local format=() scram=()
	if [ "$mode" = secure ]; then
		# A fresh metadata log on every start, so that the SCRAM
		# credentials below are the ones in it.
		rm -rf "$dir/data"
		for p in SCRAM-SHA-512 SCRAM-SHA-256; do
			scram+=(--add-scram "$p=[name=$KAFKA_SECURE_USER,password=$KAFKA_SECURE_PASSWORD]")
		done
	fi
	mkdir -p "$dir/data"
	write_config "$n"
	if [ ! -f "$dir/data/meta.properties" ]; then
		format=("${JAVA[@]}" kafka.tools.StorageTool format --ignore-formatted
			-t "$(cat "$base/cluster-id")" -c "$dir/server.properties" ${scram[@]+"${scram[@]}"})
		"${format[@]}" >"$dir/format.log" 2>&1 ||
			{ show_log_tail "$dir/format.log"; die "node $n: formatting $dir/data failed"; }
	fi
	log "node $n: starting on 127.0.0.1:$port (log: $dir/kafka.log)"
	start_background "$dir/kafka.pid" "$dir/kafka.log" "${JAVA[@]}" kafka.Kafka "$dir/server.properties"
}

ready_check() {
	local bin="$CONNECTD_RUN/bin/kafka-ready"
	(cd "$ROOT_DIR" && go build -o "$bin" ./test/testenv/cmd/kafka-ready) || die "cannot build the Kafka readiness check"
	local n
	for n in "${nodes[@]}"; do
		wait_until "$KAFKA_READY_TIMEOUT" "Kafka node $n port $(broker_port "$n")" \
			"$base/node-$n/kafka.log" "$base/node-$n/kafka.pid" port_open "$(broker_port "$n")"
	done
	# The topic and transaction check goes through the PLAINTEXT listener;
	# of the SASL_SSL one it checks only that it accepts connections (the
	# tests that use it log in over it first thing).
	if [ "$mode" = secure ]; then
		wait_until "$KAFKA_READY_TIMEOUT" "Kafka secure node SASL_SSL port $KAFKA_SECURE_SSL_PORT" \
			"$base/node-1/kafka.log" "$base/node-1/kafka.pid" port_open "$KAFKA_SECURE_SSL_PORT"
	fi
	if ! "$bin" -brokers "$(brokers)" -replication-factor "$rf" -timeout "${KAFKA_READY_TIMEOUT}s"; then
		for n in "${nodes[@]}"; do show_log_tail "$base/node-$n/kafka.log"; done
		die "Kafka ($mode) at $(brokers) did not pass the topic + transaction check"
	fi
}

# stop_nodes sends SIGTERM to every node at once, then SIGKILL to those still
# up after 30s: a node of a cluster whose other controllers are already gone
# cannot finish a controlled shutdown and would otherwise wait for a timeout.
stop_nodes() {
	local n pids=() pf
	for n in "${nodes[@]}"; do
		pf="$base/node-$n/kafka.pid"
		if pid_alive "$pf"; then
			pids+=("$(head -n1 "$pf")")
			log "$mode node $n: stopping pid ${pids[-1]}"
			kill -TERM "${pids[-1]}" 2>/dev/null || true
		fi
		rm -f "$pf"
	done
	local deadline=$((SECONDS + 30)) pid
	for pid in ${pids[@]+"${pids[@]}"}; do
		while kill -0 "$pid" 2>/dev/null; do
			if [ "$SECONDS" -ge "$deadline" ]; then
				log "pid $pid still running after 30s, sending SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.2
		done
	done
	[ "${#pids[@]}" -gt 0 ] || log "$mode: not running"
}

case "$cmd" in
start)
	[ -f "$KAFKA_HOME/.complete" ] || "$TEST_DIR/scripts/kafka-jars.sh"
	command -v java >/dev/null || ensure_packages java:openjdk-17-jre-headless
	[ "$mode" != secure ] || check_secure_env
	mkdir -p "$base"
	if [ ! -s "$base/cluster-id" ]; then
		"${JAVA[@]}" kafka.tools.StorageTool random-uuid | tail -n1 >"$base/cluster-id.tmp"
		mv "$base/cluster-id.tmp" "$base/cluster-id"
	fi
	for n in "${nodes[@]}"; do start_node "$n"; done
	ready_check
	log "Kafka $KAFKA_VERSION ($mode) ready at $(brokers)$([ "$mode" != secure ] || echo ", SASL_SSL at 127.0.0.1:$KAFKA_SECURE_SSL_PORT")"
	;;
stop) stop_nodes ;;
status)
	for n in "${nodes[@]}"; do
		if pid_alive "$base/node-$n/kafka.pid"; then
			echo "kafka $mode node $n: running pid $(cat "$base/node-$n/kafka.pid") 127.0.0.1:$(broker_port "$n")"
		else
			echo "kafka $mode node $n: stopped"
		fi
	done
	;;
clean)
	stop_nodes
	rm -rf "$base"
	log "removed $base"
	;;
brokers) brokers ;;
*) die "unknown command '$cmd' (want start, stop, status, clean, brokers)" ;;
esac
