package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

// sinkConfig is a typical implementation config: nested struct, list,
// durations and numbers.
type sinkConfig struct {
	DSN    string   `yaml:"dsn"`
	Tables []string `yaml:"tables"`
	TLS    struct {
		CAFile string `yaml:"ca_file"`
		Verify bool   `yaml:"verify"`
	} `yaml:"tls"`
	Timeout  time.Duration `yaml:"timeout"`
	Retry    Duration      `yaml:"retry"`
	PoolSize int           `yaml:"pool_size"`
	Ratio    float64       `yaml:"ratio"`
	Labels   map[string]string
	Extra    any `yaml:"extra"`
}

// sinkOf parses a one-connector config whose sink is the given YAML (indented
// under "sink:" at column 7) and returns that sink.
func sinkOf(t *testing.T, sinkYAML string) Component {
	t.Helper()
	src := "kafka: {brokers: [b]}\nconnectors:\n  - name: c\n    source: {type: kafka}\n    sink:\n" + sinkYAML
	cfg, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg.Connectors[0].Sink
}

func TestComponentDecode(t *testing.T) {
	t.Setenv("CA_FOR_TEST", "/etc/ca.pem")
	sink := sinkOf(t, `      type: postgres
      dsn: postgres://db
      tables: [orders, "payments"]
      tls:
        ca_file: ${CA_FOR_TEST}
        verify: true
      timeout: 1m
      retry: 250ms
      pool_size: 8
      ratio: 0.5
      labels: {team: data}
      extra: {a: [1, x]}
`)
	if sink.Type != "postgres" || sink.Pos != (Position{File: "f.yaml", Line: 6, Column: 7}) {
		t.Fatalf("sink = %q at %v", sink.Type, sink.Pos)
	}
	var got sinkConfig
	if err := sink.Decode(&got); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	var want sinkConfig
	want.DSN = "postgres://db"
	want.Tables = []string{"orders", "payments"}
	want.TLS.CAFile = "/etc/ca.pem"
	want.TLS.Verify = true
	want.Timeout = time.Minute
	want.Retry = Duration(250 * time.Millisecond)
	want.PoolSize = 8
	want.Ratio = 0.5
	want.Labels = map[string]string{"team": "data"}
	want.Extra = map[string]any{"a": []any{uint64(1), "x"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode =\n%+v\nwant\n%+v", got, want)
	}
}

func TestComponentDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		sink string
		want []string
	}{
		{
			name: "unknown keys at two levels",
			sink: "      type: postgres\n      dns: x\n      tls: {ca: y}\n",
			want: []string{
				`f.yaml:7:7: unknown key "dns" in postgres (known keys: dsn, tables, tls, timeout, retry, pool_size, ratio, labels, extra)`,
				`f.yaml:8:13: unknown key "ca" in postgres.tls (known keys: ca_file, verify)`,
			},
		},
		{
			name: "wrong types",
			sink: "      type: postgres\n      tables: orders\n      pool_size: many\n      timeout: 5\n      tls: {verify: maybe}\n",
			want: []string{
				"f.yaml:7:15: postgres.tables: expected a list, got a string",
				`f.yaml:8:18: postgres.pool_size: expected an integer that fits in int, got "many"`,
				`f.yaml:9:16: postgres.timeout: invalid duration "5" (want a Go duration such as 100ms, 1s or 2m30s)`,
				`f.yaml:10:21: postgres.tls.verify: expected true or false, got "maybe"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg sinkConfig
			err := sinkOf(t, tt.sink).Decode(&cfg)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Decode error = %T %v, want Errors", err, err)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestComponentDecodeUnsetEnvAtDecodeTime(t *testing.T) {
	c := NewComponent("postgres", map[string]any{"dsn": "${DSN_UNSET_FOR_TEST}"})
	var cfg sinkConfig
	err := c.Decode(&cfg)
	want := "<inline>:1:6: environment variable DSN_UNSET_FOR_TEST is not set (use ${DSN_UNSET_FOR_TEST:default} for a default)"
	if err == nil || err.Error() != want {
		t.Errorf("Decode error = %v, want %s", err, want)
	}
	t.Setenv("DSN_UNSET_FOR_TEST", "postgres://x")
	if err := c.Decode(&cfg); err != nil || cfg.DSN != "postgres://x" {
		t.Errorf("after Setenv: Decode = %v, dsn %q", err, cfg.DSN)
	}
}

func TestNewComponent(t *testing.T) {
	c := NewComponent("postgres", map[string]any{
		"dsn":     "postgres://db",
		"tables":  []string{"a", "b"},
		"tls":     map[string]any{"ca_file": "/ca"},
		"timeout": 3 * time.Second,
		"retry":   Duration(time.Millisecond),
	})
	if c.Type != "postgres" || c.Pos.File != "<inline>" {
		t.Fatalf("component = %q at %v", c.Type, c.Pos)
	}
	var got sinkConfig
	if err := c.Decode(&got); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got.DSN != "postgres://db" || !reflect.DeepEqual(got.Tables, []string{"a", "b"}) ||
		got.TLS.CAFile != "/ca" || got.Timeout != 3*time.Second || got.Retry.D() != time.Millisecond {
		t.Errorf("Decode = %+v", got)
	}

	err := NewComponent("postgres", map[string]any{"nope": 1}).Decode(&got)
	if err == nil || !strings.HasPrefix(err.Error(), `<inline>:1:1: unknown key "nope" in postgres`) {
		t.Errorf("unknown key error = %v", err)
	}
}

func TestComponentErrorf(t *testing.T) {
	sink := sinkOf(t, "      type: postgres\n      dsn: x\n      batch.max.bytes: 1\n      tls:\n        ca_file: /ca\n")
	tests := []struct {
		err  error
		want string
	}{
		{sink.Errorf("cannot connect: %s", "refused"), "f.yaml:6:7: cannot connect: refused"},
		{sink.FieldErrorf("dsn", "bad dsn"), "f.yaml:7:7: bad dsn"},
		{sink.FieldErrorf("batch.max.bytes", "too big"), "f.yaml:8:7: too big"},
		{sink.FieldErrorf("tls.ca_file", "unreadable"), "f.yaml:10:9: unreadable"},
		{sink.FieldErrorf("table", "table is required"), "f.yaml:6:7: table is required"},
		{Component{}.FieldErrorf("x", "no position"), "<unknown>: no position"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
		var e *Error
		if !errors.As(tt.err, &e) {
			t.Errorf("%v is not an *Error", tt.err)
		}
	}
}

func TestComponentDecodeDoesNotNeedYAML(t *testing.T) {
	var cfg sinkConfig
	if err := (Component{Type: "x"}).Decode(&cfg); err != nil {
		t.Errorf("zero Component Decode = %v", err)
	}
	if err := NewComponent("x", nil).Decode(cfg); err == nil {
		t.Error("Decode into a non-pointer succeeded")
	}
}

func TestComponentMarshalKeepsEnvReferences(t *testing.T) {
	t.Setenv("SECRET_FOR_TEST", "hunter2")
	c := NewComponent("postgres", map[string]any{"dsn": "${SECRET_FOR_TEST}", "pool_size": 4})
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := "type: postgres\ndsn: ${SECRET_FOR_TEST}\npool_size: 4\n"
	if string(out) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", out, want)
	}
}

func TestComponentUnmarshalYAML(t *testing.T) {
	var conn Connector
	if err := yaml.Unmarshal([]byte("name: c\nsink: {type: kafka, topic: out}\n"), &conn); err != nil {
		t.Fatal(err)
	}
	var sink struct {
		Topic string `yaml:"topic"`
	}
	if err := conn.Sink.Decode(&sink); err != nil || conn.Sink.Type != "kafka" || sink.Topic != "out" {
		t.Errorf("sink = %q %+v, err %v", conn.Sink.Type, sink, err)
	}
}
