package connector

import "testing"

// Origin.AppendTo renders what Origin.String does, for any topic name and
// the largest partition and offset.
func TestOriginAppendToMatchesString(t *testing.T) {
	for _, o := range []Origin{
		{Topic: "orders", Partition: 3, Offset: 42},
		{Topic: "generator:a/b", Partition: 0, Offset: 0},
		{Topic: "t", Partition: 2147483647, Offset: 9223372036854775807},
	} {
		if got := string(o.AppendTo([]byte("x"))); got != "x"+o.String() {
			t.Errorf("AppendTo(%v) = %q, want %q", o, got, "x"+o.String())
		}
	}
}
