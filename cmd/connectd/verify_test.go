package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestVerifyOperationalErrors(t *testing.T) {
	// A loopback port with nothing listening: bind one, then free it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close()

	dir := t.TempDir()
	embedded := writeConfig(t, dir, "embedded.yaml", `
kafka:
	embedded: {listen: `+free+`}
connectors:
	- name: gen
		source: {type: generator}
		sink: {type: kafka, topic: out}
`)
	tests := []struct {
		name string
		args []string
		want []string // fragments of stderr
	}{
		{"unknown connector", []string{"-c", embedded, "--connector", "nope"}, []string{`no connector "nope"`, "gen"}},
		{"embedded broker not running", []string{"-c", embedded, "--connector", "gen"}, []string{"cannot reach Kafka at " + free, "connectd run"}},
		{"missing connector flag", []string{"-c", embedded}, []string{"--connector NAME"}},
		{"missing file", []string{"-c", dir + "/nope.yaml", "--connector", "gen"}, []string{"nope.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := connectd(t, time.Minute, nil, append([]string{"verify"}, tc.args...)...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing (no report without an answer)", r.stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}
