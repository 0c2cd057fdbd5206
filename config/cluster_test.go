package config

import (
	"strings"
	"testing"
	"time"
)

func TestClusterDefaults(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte(minimal+"instance_id: a\ncluster: {id: prod}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cluster
	if c.ConfigTopic != "_connectd-prod-configs" || c.StatusTopic != "_connectd-prod-status" || c.StatusInterval.D() != 5*time.Second {
		t.Errorf("cluster = %+v", c)
	}
	if cfg, err := Parse("f.yaml", []byte(minimal)); err != nil || cfg.Cluster != nil {
		t.Errorf("no cluster block: %+v, %v", cfg.Cluster, err)
	}
}

// TestClusterErrors: each bad cluster setting is reported at its value, or
// at the block when missing.
func TestClusterErrors(t *testing.T) {
	for _, tt := range []struct{ name, src, want string }{
		{"no id", "instance_id: a\ncluster: {status_interval: 1s}\n", "f.yaml:10:1: cluster.id is required"},
		{"bad id", "instance_id: a\ncluster:\n  id: pr od\n", `f.yaml:11:7: cluster.id "pr od": use letters`},
		{"same topics", "instance_id: a\ncluster:\n  id: p\n  config_topic: t\n  status_topic: t\n", "f.yaml:13:17: cluster.status_topic must differ"},
		{"bad topic", "instance_id: a\ncluster:\n  id: p\n  status_topic: a/b\n", `f.yaml:12:17: cluster.status_topic "a/b" is not a valid Kafka topic name`},
		{"zero interval", "instance_id: a\ncluster:\n  id: p\n  status_interval: 0s\n", "f.yaml:12:20: cluster.status_interval must be positive"},
		{"no instance_id", "cluster: {id: p}\n", "f.yaml:9:1: cluster mode needs an explicit instance_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(minimal+tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestWrittenKeepsReferences: a connector's Written definition (what
// cluster mode seeds the config topic with) holds ${VAR} and ${file:}
// references as written, merge keys resolved, while the parsed connector
// has the values.
func TestWrittenKeepsReferences(t *testing.T) {
	t.Setenv("WRITTEN_TOPIC", "secret-topic")
	cfg, err := Parse("f.yaml", []byte(`
kafka:
  brokers: ["localhost:9092"]
connectors:
  - &first
    name: first
    shutdown_timeout: 5s
    source: {type: kafka, topics: [in]}
    sink: {type: kafka, topic: out}
  - <<: *first
    name: c
    sink: {type: kafka, topic: "${WRITTEN_TOPIC}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Connectors[1]
	w := string(c.Written)
	if !strings.Contains(w, `"topic":"${WRITTEN_TOPIC}"`) || strings.Contains(w, "secret-topic") || !strings.Contains(w, `"shutdown_timeout":"5s"`) {
		t.Errorf("Written = %s, want the reference and the merged key", w)
	}
	again, err := ParseConnector("again", c.Written)
	if err != nil || again.ShutdownTimeout.D() != 5*time.Second {
		t.Errorf("Written does not parse back: %v, %+v", err, again)
	}
}

// TestClusterRefusesStateFile: the config topic replaces admin.state_file.
func TestClusterRefusesStateFile(t *testing.T) {
	_, err := Parse("f.yaml", []byte(minimal+"instance_id: a\nadmin: {state_file: s.json}\ncluster: {id: p}\n"))
	if err == nil || !strings.Contains(err.Error(), "admin.state_file is not used in cluster mode") {
		t.Fatalf("error %v, want admin.state_file refused", err)
	}
}
