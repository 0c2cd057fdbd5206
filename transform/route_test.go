package transform

import (
	"strings"
	"testing"
)

func TestRoute(t *testing.T) {
	tests := []struct {
		name, expr, value, topic string
	}{
		{"from value", `"orders-" + value.customer.tier`, `{"customer": {"tier": "gold"}}`, "orders-gold"},
		{"from header", `"by-source-" + headers.source`, `{}`, "by-source-web"},
		{"conditional", `value.amount > 100 ? "big" : "small"`, `{"amount": 5}`, "small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := mustBuild(t, "route", "expr: '"+tt.expr+"'")
			out, err := applyOne(t, tr, testRecord(tt.value))
			if err != nil {
				t.Fatal(err)
			}
			if out.Topic != tt.topic {
				t.Fatalf("Topic = %q, want %q", out.Topic, tt.topic)
			}
		})
	}
}

func TestRouteErrors(t *testing.T) {
	if _, err := Build("route", yamlConfig(`expr: "partition + 1"`)); err == nil || !strings.Contains(err.Error(), "does not compile") {
		t.Errorf("non-string expr: got %v, want compile error", err)
	}
	tr := mustBuild(t, "route", `expr: "string(value.topic ?? \"\")"`)
	if _, err := tr.Apply(testRecord(`{}`)); err == nil || !strings.Contains(err.Error(), "empty topic") {
		t.Errorf("empty result: got %v, want empty topic error", err)
	}
	tr = mustBuild(t, "route", `expr: "value.topic"`)
	if _, err := tr.Apply(testRecord(`{"topic": 7}`)); err == nil || !strings.Contains(err.Error(), "not string") {
		t.Errorf("non-string at run time: got %v, want not string error", err)
	}
}
