package config

import (
	"strings"
	"testing"
)

func TestParseConnector(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string // error lines; none means valid
	}{
		{"valid json", `{"name": "x", "source": {"type": "kafka", "topics": ["a"]}, "sink": {"type": "kafka", "topic": "b"}}`, nil},
		{"valid yaml", "name: x\nsource: {type: generator}\nsink: {type: kafka, topic: b}\n", nil},
		{"every error at once", `{"name": "x", "gaurantee": "exactly_once",
 "source": {"type": "kafka"},
 "sink": {"type": "kafka", "topic": "b"}, "commit.interval": "nope"}`, []string{
			`body:1:15: unknown key "gaurantee"`,
			`body:3:62: connectors[0].commit.interval: invalid duration "nope"`,
		}},
		{"syntax", `{"name": `, []string{"body:1:"}},
		{"empty", ``, []string{"body:1:1: empty connector definition"}},
		{"no name", `{"source": {"type": "generator"}, "sink": {"type": "kafka", "topic": "b"}}`, []string{"name is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConnector("body", []byte(tc.body))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected errors:\n%v", err)
				}
				if c.Guarantee != ExactlyOnce || c.CommitInterval.D() != DefaultCommitInterval || c.Name != "x" {
					t.Fatalf("defaults not applied: %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			got := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
		})
	}
}
