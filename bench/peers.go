package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// jvmHeap bounds each JVM peer's heap, like the broker's (-Xmx512m).
const jvmHeap = "-Xmx512m"

// buildStreamsPeer builds bench/peers/streams-copy with Maven (from Maven
// Central only) and returns the classpath to run it with.
func buildStreamsPeer(ctx context.Context, dir, logPath string) (string, error) {
	if _, err := exec.LookPath("mvn"); err != nil {
		return "", fmt.Errorf("mvn not found (apt-get install maven): %w", err)
	}
	log, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, "mvn", "-B", "-q", "-f", filepath.Join(dir, "pom.xml"), "package")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mvn package in %s: %w (log: %s)", dir, err, logPath)
	}
	return filepath.Join(dir, "target", "classes") + ":" + filepath.Join(dir, "target", "lib", "*"), nil
}

// streamsArgv runs the Kafka Streams copy app with the scenario's commit
// interval. Tuned (the peer of issue 17's targets): one stream thread per
// core (0: the app asks the JVM) and the producer batching and compression
// every other Kafka writer of the benchmark has (snappy, 1 MB batches,
// linger 10 ms: franz-go's defaults, which connectd and the bare loop use).
// defaults: one stream thread (one transactional producer, like one
// connectd connector) and Kafka Streams' client defaults.
func streamsArgv(classpath string, brokers []string, in, out, appID string, commit time.Duration, defaults bool) []string {
	threads, setup := "0", "tuned"
	if defaults {
		threads, setup = "1", "defaults"
	}
	return []string{"java", jvmHeap, "-cp", classpath, "io.connectd.bench.StreamsCopy",
		strings.Join(brokers, ","), in, out, appID, strconv.FormatInt(commit.Milliseconds(), 10), threads, setup}
}

// streamsWindowArgv runs the windowed Kafka Streams app on one input topic
// with the scenario's commit interval, one stream thread per core (0: the
// app asks the JVM), its RocksDB state under stateDir, and emit mode
// suppress or onclose.
func streamsWindowArgv(classpath string, brokers []string, in, out, appID string, commit time.Duration, stateDir, emit string) []string {
	return []string{"java", jvmHeap, "-cp", classpath, "io.connectd.bench.StreamsWindow",
		strings.Join(brokers, ","), in, out, appID, strconv.FormatInt(commit.Milliseconds(), 10), "0", stateDir, emit}
}

// tmcArgv runs Apache Kafka's TransactionalMessageCopier in group mode
// with KIP-447 group metadata. It has no commit interval: it commits one
// transaction per poll of at most --transaction-size records, set to
// connectd's batch.max.records. It exits once it has copied what was in
// the topic when it joined, so it has no latency phase.
func tmcArgv(kafkaLibs string, brokers []string, in, out, group, txnID string, txnSize int) []string {
	return []string{"java", jvmHeap, "-cp", filepath.Join(kafkaLibs, "*"),
		"org.apache.kafka.tools.TransactionalMessageCopier",
		"--broker-list", strings.Join(brokers, ","),
		"--input-topic", in, "--input-partition", "0", "--output-topic", out,
		"--consumer-group", group, "--transactional-id", txnID,
		"--transaction-size", strconv.Itoa(txnSize),
		"--group-mode", "--use-group-metadata"}
}

// javaVersion is the first line of `java -version`.
func javaVersion() string {
	out, err := exec.Command("java", "-version").CombinedOutput()
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
