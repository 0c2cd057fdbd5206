package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigsValidate keeps the example configs from rotting: each must
// load and every component must decode, with the environment variables they
// reference unset (their defaults apply) and set.
func TestConfigsValidate(t *testing.T) {
	paths, err := filepath.Glob("../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 2 {
		t.Fatalf("found %d configs in configs/, want quickstart.yaml and kafka-to-kafka.yaml at least", len(paths))
	}
	for _, path := range paths {
		t.Run("defaults/"+filepath.Base(path), func(t *testing.T) {
			// Empty counts as unset for ${VAR:default}.
			for _, v := range []string{"KAFKA_BROKERS", "SOURCE_TOPIC", "SINK_TOPIC", "CONNECTD_ADMIN_LISTEN"} {
				t.Setenv(v, "")
			}
			cfg, err := loadAndValidate(path)
			if err != nil {
				t.Fatalf("%s:\n%v", path, err)
			}
			if len(cfg.Connectors) == 0 {
				t.Fatalf("%s has no connectors", path)
			}
		})
	}
	t.Run("set/kafka-to-kafka.yaml", func(t *testing.T) {
		t.Setenv("KAFKA_BROKERS", "kafka-1:9092")
		t.Setenv("SOURCE_TOPIC", "in")
		t.Setenv("SINK_TOPIC", "out")
		cfg, err := loadAndValidate("../../configs/kafka-to-kafka.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(cfg.Kafka.Brokers, ","); got != "kafka-1:9092" {
			t.Errorf("brokers = %q, want the environment's", got)
		}
	})
}

func TestValidateQuickstart(t *testing.T) {
	r := connectd(t, time.Minute, nil, "validate", "-c", "../../configs/quickstart.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if want := "../../configs/quickstart.yaml: ok (2 connectors)\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		// want lists fragments that must each start a line of stderr
		// (position) and appear on it (message); FILE stands for the
		// config's path.
		want [][2]string
	}{
		{
			name: "malformed YAML",
			yaml: `
kafka:
	brokers: [127.0.0.1:9092
connectors:
	- name: a
`,
			want: [][2]string{{"FILE:4:1: ", "YAML syntax error"}},
		},
		{
			name: "unknown keys",
			yaml: `
kafka:
	brokers: [127.0.0.1:9092]
	brokrs: [x]
connectors:
	- name: a
		comit.interval: 1s
		source: {type: generator, count: 10}
		sink: {type: kafka, topic: out}
`,
			want: [][2]string{
				{"FILE:4:3: ", `unknown key "brokrs" in kafka`},
				{"FILE:7:5: ", `unknown key "comit.interval" in connectors[0]`},
			},
		},
		{
			name: "unknown key in a component",
			yaml: `
kafka:
	brokers: [127.0.0.1:9092]
connectors:
	- name: a
		source: {type: generator, count: 10, cuont: 3}
		sink: {type: kafka, topc: out}
`,
			want: [][2]string{
				{"FILE:6:42: ", `unknown key "cuont"`},
				{"FILE:7:25: ", `unknown key "topc"`},
			},
		},
		{
			name: "missing env var",
			yaml: `
kafka:
	brokers: ["${CONNECTD_TEST_UNSET_BROKER}"]
connectors:
	- name: a
		source: {type: generator, count: 10}
		sink:
			type: kafka
			topic: ${CONNECTD_TEST_UNSET_TOPIC}
`,
			want: [][2]string{
				{"FILE:3:13: ", "environment variable CONNECTD_TEST_UNSET_BROKER is not set"},
				{"FILE:9:14: ", "environment variable CONNECTD_TEST_UNSET_TOPIC is not set"},
			},
		},
		{
			name: "missing env var in a component",
			yaml: `
kafka:
	brokers: [127.0.0.1:9092]
connectors:
	- name: a
		source: {type: generator, count: 10}
		sink:
			type: kafka
			topic: ${CONNECTD_TEST_UNSET_TOPIC}
`,
			want: [][2]string{
				{"FILE:9:14: ", "environment variable CONNECTD_TEST_UNSET_TOPIC is not set"},
			},
		},
		{
			name: "unknown transform",
			yaml: `
kafka:
	brokers: [127.0.0.1:9092]
connectors:
	- name: a
		source: {type: generator, count: 10}
		transforms:
			- type: uppercase
				fields: [x]
		sink: {type: kafka, topic: out}
`,
			want: [][2]string{{"FILE:8:9: ", `unknown transform type "uppercase"`}},
		},
		{
			name: "expressions that do not compile",
			yaml: `
kafka:
	brokers: [127.0.0.1:9092]
connectors:
	- name: a
		source: {type: generator, count: 10}
		transforms:
			- type: filter
				expr: 'value.amount >'
			- type: route
				expr: 'vaule.amount > 5 ? "a" : "b"'
		sink: {type: kafka, topic: out}
`,
			want: [][2]string{
				{"FILE:9:9: ", `transforms[0] (filter): expr: "value.amount >" does not compile`},
				{"FILE:11:9: ", "unknown name vaule"},
			},
		},
		{
			name: "file and component errors together",
			yaml: `
kafka:
	brokers: [127.0.0.1:9092]
	embeded: {}
connectors:
	- name: a
		gaurantee: exactly_once
		source: {type: kafka, topics: [x], colour: red}
		transforms:
			- type: sett
		sink: {type: kafka, topic: out}
`,
			want: [][2]string{
				{"FILE:4:3: ", `unknown key "embeded"`},
				{"FILE:7:5: ", `unknown key "gaurantee"`},
				{"FILE:8:40: ", `unknown key "colour"`},
				{"FILE:10:9: ", `unknown transform type "sett"`},
			},
		},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml", tc.yaml)
			r := connectd(t, time.Minute, nil, "validate", "-c", path)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			for _, w := range tc.want {
				pos := strings.ReplaceAll(w[0], "FILE", path)
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, pos) && strings.Contains(l, w[1]) {
						found = true
					}
				}
				if !found {
					t.Errorf("no line %q...%q in:\n%s", pos, w[1], r.stderr)
				}
			}
			// Every line is a positioned problem or the indented
			// continuation of one.
			for _, l := range lines {
				if !strings.HasPrefix(l, path+":") && !strings.HasPrefix(l, "\t") {
					t.Errorf("stray line %q", l)
				}
			}
		})
	}
}

func TestValidateUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"validate"}, exitUsage},
		{[]string{"validate", "-c", "x.yaml", "extra"}, exitUsage},
		{[]string{"validate", "--nope"}, exitUsage},
		{[]string{"validate", "-c", "/nonexistent/connectd.yaml"}, exitFail},
		{[]string{"frobnicate"}, exitUsage},
		{nil, exitUsage},
		{[]string{"help"}, exitOK},
		{[]string{"validate", "-h"}, exitOK},
	} {
		r := connectd(t, time.Minute, nil, tc.args...)
		if r.code != tc.code {
			t.Errorf("connectd %v: exit %d, want %d\n%s", tc.args, r.code, tc.code, r.stderr)
		}
	}
}
