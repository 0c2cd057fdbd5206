#!/usr/bin/env bash
# Fetches Apache Kafka $KAFKA_VERSION's jars from Maven (test/kafka/pom.xml)
# into $CONNECTD_CACHE/kafka-$KAFKA_VERSION/libs. Idempotent: a completed copy
# is marked and not fetched again.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

libs="$KAFKA_HOME/libs"
marker="$KAFKA_HOME/.complete"
pom="$TEST_DIR/kafka/pom.xml"
# The marker records the pom's hash, so editing the pom refetches.
pom_hash="$(sha256sum "$pom" | cut -c1-16)"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$pom_hash" ]; then
	log "Kafka $KAFKA_VERSION jars present in $libs"
	exit 0
fi
command -v mvn >/dev/null || ensure_packages mvn:maven
log "fetching Kafka $KAFKA_VERSION jars with Maven into $libs"
tmp="$KAFKA_HOME/libs.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
if ! mvn -B -q -f "$pom" -Dkafka.version="$KAFKA_VERSION" \
	dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
	show_log_tail "$KAFKA_HOME/mvn.log"
	die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
fi
[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
rm -rf "$libs"
mv "$tmp" "$libs"
echo "$pom_hash" >"$marker"
log "Kafka $KAFKA_VERSION: $(find "$libs" -name '*.jar' | wc -l) jars in $libs"
