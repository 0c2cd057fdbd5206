#!/bin/bash
# Starts one combined KRaft broker+controller. Listeners:
#   INTERNAL  :9092 advertised as $KAFKA_INTERNAL_HOST:9092 (other containers)
#   CONTROLLER:9093
#   EXTERNAL  :9094 advertised as $KAFKA_ADVERTISED_HOST:$KAFKA_ADVERTISED_PORT
#             (the host, through the published port)
# Environment (defaults make a single node reachable on 127.0.0.1:9094):
#   KAFKA_NODE_ID (1), KAFKA_CLUSTER_ID (fixed), KAFKA_CONTROLLER_QUORUM_VOTERS
#   (1@$KAFKA_INTERNAL_HOST:9093), KAFKA_INTERNAL_HOST ($(hostname)),
#   KAFKA_ADVERTISED_HOST (127.0.0.1), KAFKA_ADVERTISED_PORT (9094),
#   KAFKA_REPLICATION_FACTOR (1), KAFKA_MIN_ISR (1), KAFKA_HEAP_OPTS (-Xmx512m),
#   KAFKA_EXTRA_PROPERTIES (extra server.properties lines).
set -euo pipefail

node="${KAFKA_NODE_ID:-1}"
internal="${KAFKA_INTERNAL_HOST:-$(hostname)}"
rf="${KAFKA_REPLICATION_FACTOR:-1}"
isr="${KAFKA_MIN_ISR:-1}"
props=/opt/kafka/config/server.properties
data=/var/lib/kafka/data

cat >"$props" <<PROPS
process.roles=broker,controller
node.id=$node
controller.quorum.voters=${KAFKA_CONTROLLER_QUORUM_VOTERS:-$node@$internal:9093}
controller.listener.names=CONTROLLER
listeners=INTERNAL://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093,EXTERNAL://0.0.0.0:9094
advertised.listeners=INTERNAL://$internal:9092,EXTERNAL://${KAFKA_ADVERTISED_HOST:-127.0.0.1}:${KAFKA_ADVERTISED_PORT:-9094}
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT
log.dirs=$data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
# Keep every record: window results carry their window's event time, which
# many tests set in 1970, and the default 7-day retention would delete them
# at its next check (every 5 min), in the middle of a test.
log.retention.ms=-1
${KAFKA_EXTRA_PROPERTIES:-}
PROPS

# shellcheck disable=SC2206
java=(java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -Djava.awt.headless=true
	-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties -cp '/opt/kafka/libs/*')
if [ ! -f "$data/meta.properties" ]; then
	mkdir -p "$data"
	"${java[@]}" kafka.tools.StorageTool format --ignore-formatted \
		-t "${KAFKA_CLUSTER_ID:-Y29ubmVjdGQtdGVzdC1rYQ}" -c "$props"
fi
exec "${java[@]}" kafka.Kafka "$props"
