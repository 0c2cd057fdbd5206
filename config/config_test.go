package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// minimal is the smallest valid config; tests append to or edit it.
const minimal = `kafka:
  brokers: [localhost:9092]
connectors:
  - name: c1
    source:
      type: kafka
    sink:
      type: postgres
`

func TestParseValidFullConfigWithDefaults(t *testing.T) {
	t.Setenv("PG_DSN", "postgres://db/app")
	src := `admin:
  listen: 0.0.0.0:9000
kafka:
  embedded:
    data_dir: /var/lib/connectd
connectors:
  - name: orders-to-pg
    source:
      type: kafka
      topics: [orders]
    transforms:
      - type: filter
        expr: value.amount > 0
    sink:
      type: postgres
      dsn: ${PG_DSN}
  - name: audit
    guarantee: at_least_once
    commit.interval: 1s
    batch.max.records: 500
    transaction.timeout: 30s
    shutdown_timeout: 2s
    event_id: {from: json, field: meta.id}
    errors.tolerance: all
    dead_letter_queue: {topic: audit-dlq}
    source: {type: generator}
    sink: {type: kafka, topic: audit-out}
`
	cfg, err := Parse("full.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Path != "full.yaml" {
		t.Errorf("Path = %q", cfg.Path)
	}
	if cfg.Admin.Listen != "0.0.0.0:9000" {
		t.Errorf("Admin.Listen = %q", cfg.Admin.Listen)
	}
	wantEmbedded := &Embedded{Listen: DefaultEmbeddedListen, DataDir: "/var/lib/connectd", Partitions: DefaultEmbeddedPartitions}
	if !reflect.DeepEqual(cfg.Kafka.Embedded, wantEmbedded) {
		t.Errorf("Embedded = %+v, want %+v", cfg.Kafka.Embedded, wantEmbedded)
	}
	if len(cfg.Connectors) != 2 {
		t.Fatalf("got %d connectors", len(cfg.Connectors))
	}

	c := cfg.Connectors[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"guarantee", c.Guarantee, ExactlyOnce},
		{"commit.interval", c.CommitInterval.D(), 100 * time.Millisecond},
		{"batch.max.records", c.BatchMaxRecords, 10000},
		{"tasks", c.Tasks, 1},
		{"transaction.timeout", c.TransactionTimeout.D(), 60 * time.Second},
		{"shutdown_timeout", c.ShutdownTimeout.D(), 10 * time.Second},
		{"event_id", c.EventID, EventID{From: "header", Header: "event-id"}},
		{"errors.tolerance", c.ErrorsTolerance, "none"},
		{"pos", c.Pos, Position{File: "full.yaml", Line: 7, Column: 5}},
		{"source.type", c.Source.Type, "kafka"},
		{"source.pos", c.Source.Pos, Position{File: "full.yaml", Line: 9, Column: 7}},
		{"transforms", len(c.Transforms), 1},
		{"transform.type", c.Transforms[0].Type, "filter"},
		{"transform.pos", c.Transforms[0].Pos, Position{File: "full.yaml", Line: 12, Column: 9}},
		{"sink.type", c.Sink.Type, "postgres"},
	}
	a := cfg.Connectors[1]
	checks = append(checks, []struct {
		name      string
		got, want any
	}{
		{"audit guarantee", a.Guarantee, AtLeastOnce},
		{"audit commit.interval", a.CommitInterval.D(), time.Second},
		{"audit batch.max.records", a.BatchMaxRecords, 500},
		{"audit transaction.timeout", a.TransactionTimeout.D(), 30 * time.Second},
		{"audit shutdown_timeout", a.ShutdownTimeout.D(), 2 * time.Second},
		{"audit event_id", a.EventID, EventID{From: "json", Header: "event-id", Field: "meta.id"}},
		{"audit dlq", *a.DeadLetterQueue, DeadLetterQueue{Topic: "audit-dlq"}},
		{"audit sink pos", a.Sink.Pos, Position{File: "full.yaml", Line: 27, Column: 12}},
	}...)
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}

	var sink struct {
		DSN string `yaml:"dsn"`
	}
	if err := c.Sink.Decode(&sink); err != nil {
		t.Fatalf("sink Decode: %v", err)
	}
	if sink.DSN != "postgres://db/app" {
		t.Errorf("sink dsn = %q, want the expanded ${PG_DSN}", sink.DSN)
	}
}

func TestParseDefaultAdminListen(t *testing.T) {
	cfg, err := Parse("m.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != DefaultAdminListen {
		t.Errorf("Admin.Listen = %q, want %q", cfg.Admin.Listen, DefaultAdminListen)
	}
}

// TestParseErrors checks that each bad config reports exactly the expected
// lines, all at once and in position order.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		src  string
		want []string
	}{
		{
			name: "malformed YAML",
			src:  "kafka:\n  brokers: [a\nconnectors: []\n",
			want: []string{"f.yaml:3:1: YAML syntax error: ',' or ']' must be specified"},
		},
		{
			name: "duplicate YAML key",
			src:  "kafka: {}\nkafka: {}\n",
			want: []string{`f.yaml:2:1: YAML syntax error: mapping key "kafka" already defined at [1:1]`},
		},
		{
			name: "unknown keys at several levels",
			src: `kafka:
  brokers: [b]
  embeded: {}
admin:
  port: 1
connectors:
  - name: c1
    gaurantee: exactly_once
    event_id: {form: key}
    dead_letter_queue: {topic: d, partitions: 1}
    source: {type: kafka, anything: goes}
    sink: {type: s}
colour: blue
`,
			want: []string{
				`f.yaml:3:3: unknown key "embeded" in kafka (known keys: brokers, embedded, tls, sasl)`,
				`f.yaml:5:3: unknown key "port" in admin (known keys: listen, state_file, token, auth, tls)`,
				`f.yaml:8:5: unknown key "gaurantee" in connectors[0] (known keys: name, guarantee, commit.interval, batch.max.records, tasks, transaction.timeout, shutdown_timeout, event_id, errors.tolerance, dead_letter_queue, source, transforms, sink, sinks, bounded)`,
				`f.yaml:9:16: unknown key "form" in connectors[0].event_id (known keys: from, header, field)`,
				`f.yaml:10:35: unknown key "partitions" in connectors[0].dead_letter_queue (known keys: topic)`,
				`f.yaml:13:1: unknown key "colour" in top level (known keys: admin, kafka, connectors, instance_id, offsets_topic, cluster)`,
			},
		},
		{
			name: "unknown key in embedded",
			src:  "kafka:\n  embedded:\n    partitons: 4\nconnectors: [{name: c, source: {type: a}, sink: {type: b}}]\n",
			want: []string{`f.yaml:3:5: unknown key "partitons" in kafka.embedded (known keys: listen, data_dir, partitions)`},
		},
		{
			name: "missing env var",
			src:  strings.Replace(minimal, "type: postgres", "type: postgres\n      dsn: ${PG_DSN_UNSET_FOR_TEST}", 1),
			want: []string{"f.yaml:9:12: environment variable PG_DSN_UNSET_FOR_TEST is not set (use ${PG_DSN_UNSET_FOR_TEST:default} for a default)"},
		},
		{
			name: "missing env var in a config field",
			src:  "admin:\n  listen: ${ADMIN_UNSET_FOR_TEST}\n" + minimal,
			want: []string{"f.yaml:2:11: environment variable ADMIN_UNSET_FOR_TEST is not set (use ${ADMIN_UNSET_FOR_TEST:default} for a default)"},
		},
		{
			name: "env var expanding to a bad integer",
			env:  map[string]string{"BATCH_FOR_TEST": "lots"},
			src:  strings.Replace(minimal, "name: c1", "name: c1\n    batch.max.records: ${BATCH_FOR_TEST}", 1),
			// The expanded value is not echoed: it may be a secret.
			want: []string{`f.yaml:5:24: connectors[0].batch.max.records: expected an integer that fits in int, got the value of "${BATCH_FOR_TEST}" (not shown)`},
		},
		{
			name: "file reference expanding to a bad duration",
			src:  strings.Replace(minimal, "name: c1", "name: c1\n    commit.interval: ${file:/dev/null}", 1),
			want: []string{
				`f.yaml:5:22: connectors[0].commit.interval: invalid duration the value of "${file:/dev/null}" (not shown) (want a Go duration such as 100ms, 1s or 2m30s)`,
			},
		},
		{
			name: "duplicate connector names",
			src:  minimal + "  - name: c1\n    source: {type: a}\n    sink: {type: b}\n",
			want: []string{`f.yaml:9:11: duplicate connector name "c1" (first defined at line 4): names must be unique because they key checkpoints and transactional IDs`},
		},
		{
			name: "bad duration",
			src:  strings.Replace(minimal, "name: c1", "name: c1\n    commit.interval: 10 seconds\n    shutdown_timeout: 5", 1),
			want: []string{
				`f.yaml:5:22: connectors[0].commit.interval: invalid duration "10 seconds" (want a Go duration such as 100ms, 1s or 2m30s)`,
				`f.yaml:6:23: connectors[0].shutdown_timeout: invalid duration "5" (want a Go duration such as 100ms, 1s or 2m30s)`,
			},
		},
		{
			name: "tolerance all without dead letter queue",
			src:  strings.Replace(minimal, "name: c1", "name: c1\n    errors.tolerance: all", 1),
			want: []string{"f.yaml:5:23: connectors[0]: errors.tolerance: all needs dead_letter_queue.topic, where records that fail go (dropping them would lose events silently)"},
		},
		{
			name: "transaction timeout too short for commit interval",
			src:  strings.Replace(minimal, "name: c1", "name: c1\n    commit.interval: 10s\n    transaction.timeout: 15s", 1),
			want: []string{"f.yaml:6:26: connectors[0].transaction.timeout (15s) must be greater than commit.interval (10s) + 5s: the broker aborts a transaction that stays open longer than transaction.timeout, so a batch must commit well within it"},
		},
		{
			name: "bad enums, zero batch, bad name",
			src: strings.Replace(minimal, "name: c1", `name: "c 1"
    guarantee: maybe_once
    errors.tolerance: some
    batch.max.records: 0
    event_id: {from: json}`, 1),
			want: []string{
				`f.yaml:4:11: connector name "c 1" may contain only letters, digits, '.', '_' and '-'`,
				`f.yaml:5:16: connectors[0].guarantee must be exactly_once or at_least_once, got "maybe_once"`,
				`f.yaml:6:23: connectors[0].errors.tolerance must be none or all, got "some"`,
				`f.yaml:7:24: connectors[0].batch.max.records must be > 0, got 0`,
				`f.yaml:8:16: connectors[0].event_id: from: json needs field (the dot-separated JSON path of the ID)`,
			},
		},
		{
			name: "tasks out of range",
			src:  strings.Replace(minimal, "name: c1", "name: c1\n    tasks: 0", 1),
			want: []string{"f.yaml:5:12: connectors[0].tasks must be between 1 and 64, got 0"},
		},
		{
			name: "tasks need a kafka source",
			src: strings.Replace(strings.Replace(minimal, "name: c1", "name: c1\n    tasks: 2", 1),
				"type: kafka", "type: generator", 1),
			want: []string{"f.yaml:5:12: connectors[0].tasks: only a kafka source can be split into tasks (its consumer group shares the partitions); a generator source runs one task"},
		},
		{
			name: "kafka both and neither, no connectors",
			src:  "kafka:\n  brokers: [b]\n  embedded: {}\nconnectors: []\n",
			want: []string{
				"f.yaml:3:3: kafka: set either brokers or embedded, not both",
				"f.yaml:4:1: no connectors: define at least one under connectors",
			},
		},
		{
			name: "empty file",
			src:  "",
			want: []string{
				"f.yaml:1:1: kafka: set either brokers (an external cluster) or embedded (the in-process broker)",
				"f.yaml:1:1: no connectors: define at least one under connectors",
			},
		},
		{
			name: "components missing or without type",
			src: `kafka: {embedded: {}}
connectors:
  - name: c1
    transforms:
      - expr: x
  - name: c2
    source: {topics: [a]}
    sink: kafka
`,
			want: []string{
				"f.yaml:3:5: connectors[0].source: source is required",
				"f.yaml:3:5: connectors[0].sink: sink is required",
				"f.yaml:5:9: connectors[0].transforms[0]: type is required (which transform implementation to use)",
				"f.yaml:7:14: connectors[1].source: type is required (which source implementation to use)",
				"f.yaml:8:11: connectors[1].sink: expected a mapping with a type key, got a string",
			},
		},
		{
			name: "wrong shapes",
			src:  "kafka:\n  brokers: localhost:9092\nconnectors:\n  name: c1\n",
			want: []string{
				"f.yaml:2:12: kafka.brokers: expected a list, got a string",
				"f.yaml:4:3: connectors: expected a list, got a mapping",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := Parse("f.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors:\n%s", cfg, strings.Join(tt.want, "\n"))
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("SET_FOR_TEST", "value")
	t.Setenv("EMPTY_FOR_TEST", "")
	checkExpand(t, []expandCase{
		{in: "plain", want: "plain"},
		{in: "${SET_FOR_TEST}", want: "value"},
		{in: "a-${SET_FOR_TEST}-b", want: "a-value-b"},
		{in: "${UNSET_FOR_TEST:fallback}", want: "fallback"},
		{in: "${UNSET_FOR_TEST:host:9092}", want: "host:9092"},
		{in: "${UNSET_FOR_TEST:}", want: ""},
		{in: "${EMPTY_FOR_TEST:fallback}", want: "fallback"},
		{in: "${EMPTY_FOR_TEST}", want: ""},
		{in: "${SET_FOR_TEST:fallback}", want: "value"},
		{in: "$${SET_FOR_TEST}", want: "${SET_FOR_TEST}"},
		{in: "$5 and $HOME", want: "$5 and $HOME"},
		{in: "${UNSET_FOR_TEST}", problem: "environment variable UNSET_FOR_TEST is not set (use ${UNSET_FOR_TEST:default} for a default)"},
		{in: "${1BAD}", problem: "invalid environment variable reference ${1BAD} (want ${NAME} or ${NAME:default})"},
		{in: "x${SET_FOR_TEST", problem: `unterminated ${ in "${SET_FOR_TEST" (write $${ for a literal ${)`},
	})
}

// expandCase is one reference expansion: in expands to want, or reports
// problem.
type expandCase struct{ in, want, problem string }

func checkExpand(t *testing.T, cases []expandCase) {
	t.Helper()
	for _, tt := range cases {
		got, problems := expandEnv(tt.in)
		if tt.problem != "" {
			if len(problems) != 1 || problems[0] != tt.problem {
				t.Errorf("expandEnv(%q) problems = %q, want %q", tt.in, problems, tt.problem)
			}
			continue
		}
		if len(problems) != 0 || got != tt.want {
			t.Errorf("expandEnv(%q) = %q, %q; want %q", tt.in, got, problems, tt.want)
		}
	}
}

func TestParseEnvDefaultInTypedFields(t *testing.T) {
	src := `kafka:
  embedded:
    partitions: ${PARTITIONS_UNSET_FOR_TEST:6}
connectors:
  - name: ${NAME_UNSET_FOR_TEST:c1}
    commit.interval: ${INTERVAL_UNSET_FOR_TEST:250ms}
    source: {type: kafka}
    sink: {type: kafka}
`
	cfg, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Kafka.Embedded.Partitions; got != 6 {
		t.Errorf("partitions = %d, want 6", got)
	}
	if c := cfg.Connectors[0]; c.Name != "c1" || c.CommitInterval.D() != 250*time.Millisecond {
		t.Errorf("connector = %q %s, want c1 250ms", c.Name, c.CommitInterval)
	}
}

func TestParseAnchorsAndMergeKeys(t *testing.T) {
	src := `kafka: {brokers: [b]}
connectors:
  - &base
    name: a
    commit.interval: 2s
    source: &src {type: kafka, topics: [in]}
    sink: {type: kafka}
  - <<: *base
    name: b
    source: *src
`
	cfg, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Connectors[1]
	if b.Name != "b" || b.CommitInterval.D() != 2*time.Second || b.Source.Type != "kafka" || b.Sink.Type != "kafka" {
		t.Errorf("merged connector = %+v", b)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(minimal+"  - name: c1\n    source: {type: a}\n    sink: {type: b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":9:11: duplicate connector name") {
		t.Errorf("Load error = %v, want it positioned in %s", err, path)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want os.ErrNotExist", err)
	}
}

// A connector gives sink or sinks, not both, and every listed sink needs a
// type.
func TestSinksOrSink(t *testing.T) {
	_, err := Parse("s.yaml", []byte(`connectors:
  - name: both
    source: {type: kafka, topics: [in]}
    sink: {type: kafka, topic: out}
    sinks:
      - {type: kafka, topic: out}
  - name: untyped
    source: {type: kafka, topics: [in]}
    sinks:
      - {type: kafka, topic: out}
      - {table: t}
`))
	for _, want := range []string{
		"s.yaml:5:5: connectors[0]: give sink or sinks, not both",
		"connectors[1].sinks[1]: type is required",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}
