package transform

import (
	"errors"
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	const order = `{"amount": 120, "big": 12345678901234567, "customer": {"tier": "gold"}, "flag": "yes"}`
	tests := []struct {
		name  string
		expr  string
		value string
		keep  bool
	}{
		{"value number", "value.amount > 100", order, true},
		{"value number false", "value.amount > 200", order, false},
		{"big integer exact", "value.big == 12345678901234567", order, true},
		{"nested field", `value.customer.tier == "gold"`, order, true},
		{"missing field is nil", "value.nope == nil", order, true},
		{"key", `key == "k1"`, order, true},
		{"raw", `raw contains "gold"`, order, true},
		{"raw on non-JSON", `raw startsWith "plain"`, "plain text", true},
		{"headers", `headers.source == "web"`, order, true},
		{"missing header", `!("nope" in headers) && headers.nope == ""`, order, true},
		{"origin", `topic == "orders" && partition == 1 && offset == 42`, order, true},
		{"timestamp", "timestamp == 1700000000000", order, true},
		{"event id", `event_id == "orders-1-42"`, order, true},
		{"nil value checked", "value == nil", "not json", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := mustBuild(t, "filter", "expr: '"+tt.expr+"'")
			out, err := applyOne(t, tr, testRecord(tt.value))
			if err != nil {
				t.Fatal(err)
			}
			if got := out != nil; got != tt.keep {
				t.Fatalf("keep = %v, want %v", got, tt.keep)
			}
		})
	}
}

func TestFilterBuildErrors(t *testing.T) {
	tests := []struct {
		name, cfg string
		want      []string
	}{
		{"syntax", `expr: "value.amount >"`, []string{`"value.amount >"`, "does not compile"}},
		{"unknown variable", `expr: "vaule.amount > 1"`, []string{"vaule"}},
		{"not bool", `expr: "key + 'x'"`, []string{"does not compile", "bool"}},
		{"missing", `expr: ""`, []string{"expr: is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build("filter", yamlConfig(tt.cfg))
			if err == nil {
				t.Fatal("want Build error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestFilterRecordErrors(t *testing.T) {
	tests := []struct {
		name, expr, value string
		notJSON           bool
	}{
		{"field of non-JSON value", "value.amount > 1", "x-not-json", true},
		{"non-bool at run time", "value.flag", `{"flag": "yes"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := mustBuild(t, "filter", "expr: '"+tt.expr+"'")
			_, err := tr.Apply(testRecord(tt.value))
			if err == nil {
				t.Fatal("want record error")
			}
			if got := errors.Is(err, ErrNotJSON); got != tt.notJSON {
				t.Errorf("errors.Is(ErrNotJSON) = %v, want %v (%v)", got, tt.notJSON, err)
			}
		})
	}
}

func TestFilterRecordErrorIsOneLine(t *testing.T) {
	tr := mustBuild(t, "filter", "expr: 'value.amount > 1'")
	_, err := tr.Apply(testRecord("nope"))
	want := `evaluating "value.amount > 1": value is not JSON: `
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q, want one line starting %q", err, want)
	}
	if !strings.Contains(err.Error(), "cannot fetch amount") {
		t.Fatalf("error %q does not carry expr's message", err)
	}
}
