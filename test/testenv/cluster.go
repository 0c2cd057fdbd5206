package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// LocalKafkaCluster is the three-node KRaft cluster `make kafka-cluster`
// runs on the host (node.id i+1 serves Brokers[i]), for failover tests that
// kill a broker process outright.
type LocalKafkaCluster struct {
	Brokers []string
	runDir  string // $CONNECTD_RUN/kafka-cluster
}

// KafkaCluster returns the cluster `make kafka-cluster` starts
// (KAFKA_CLUSTER_BROKERS, default 127.0.0.1:19092-19094), after checking
// that it answers. It is not started by `make services`.
func KafkaCluster(t testing.TB) *LocalKafkaCluster {
	t.Helper()
	brokers := kafkaAt(t, "the three-node Kafka cluster", EnvKafkaClusterBrokers, DefaultKafkaClusterBrokers, "kafka-cluster")
	run := os.Getenv("CONNECTD_RUN")
	if run == "" {
		run = "/var/tmp/connectd"
	}
	return &LocalKafkaCluster{Brokers: brokers, runDir: filepath.Join(run, "kafka-cluster")}
}

// Kill sends SIGKILL to the broker process of node (1-based node.id) and
// waits until it is gone: no controlled shutdown, no flushed state.
func (c *LocalKafkaCluster) Kill(t testing.TB, node int) {
	t.Helper()
	pidfile := filepath.Join(c.runDir, "node-"+strconv.Itoa(node), "kafka.pid")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("kill Kafka node %d: %v", node, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("kill Kafka node %d: pid file %s: %v", node, pidfile, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill Kafka node %d (pid %d): %v", node, pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("Kafka node %d (pid %d) still alive 30s after SIGKILL", node, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts every node that is not running (test/scripts/kafka.sh start
// cluster) and returns once the cluster can commit a transaction again.
func (c *LocalKafkaCluster) Restart(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(testDir(), "scripts", "kafka.sh"), "start", "cluster")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restart Kafka cluster: %v\n%s", err, out)
	}
}

// testDir is the repository's test/ directory, found from this file's path.
func testDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}
