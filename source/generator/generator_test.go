package generator

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
)

func newGen(t *testing.T, cfg Config) *Generator {
	t.Helper()
	g, err := New("orders", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// poll calls Poll with a deadline so a wrong blocking behaviour fails the
// test instead of hanging it.
func poll(t *testing.T, g *Generator, max int) []*connector.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recs, err := g.Poll(ctx, max)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{}, ""},
		{"", Config{}, "name is empty"},
		{"x", Config{Count: -1}, "count: -1 is negative"},
		{"x", Config{Rate: -2}, "rate: -2"},
		{"x", Config{PayloadBytes: -3}, "payload_bytes: -3 is negative"},
		{"x", Config{KeyCardinality: -4}, "key_cardinality: -4 is negative"},
	}
	for _, tt := range tests {
		_, err := New(tt.name, tt.cfg)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("New(%q, %+v) = %v, want error containing %q", tt.name, tt.cfg, err, tt.wantErr)
		}
	}
}

func TestEventDeterministic(t *testing.T) {
	cfg := Config{Seed: 42, PayloadBytes: 200}
	for _, seq := range []int64{0, 1, 999, 1 << 40} {
		a, b := Event("orders", cfg, seq), Event("orders", cfg, seq)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("Event(%d) differs between calls:\n%+v\n%+v", seq, a, b)
		}
	}
	if reflect.DeepEqual(Event("orders", Config{Seed: 1}, 5).Value, Event("orders", Config{Seed: 2}, 5).Value) {
		t.Error("seed does not vary the value")
	}
}

func TestEventShape(t *testing.T) {
	r := Event(`we"ird`, Config{}, 17)
	wantOrigin := connector.Origin{Topic: `generator:we"ird`, Partition: 0, Offset: 17}
	if r.Origin != wantOrigin || r.EventID != `we"ird-17` {
		t.Fatalf("origin %v id %q", r.Origin, r.EventID)
	}
	if h, ok := r.Header("event-id"); !ok || string(h) != r.EventID {
		t.Errorf("event-id header = %q, want %q", h, r.EventID)
	}
	if !r.Timestamp.Equal(time.UnixMilli(baseTimeMillis + 17)) {
		t.Errorf("timestamp %v is not deterministic base+seq", r.Timestamp)
	}
	var v struct {
		ID       string      `json:"id"`
		Seq      int64       `json:"seq"`
		Customer string      `json:"customer"`
		Amount   json.Number `json:"amount"`
		Payload  string      `json:"payload"`
	}
	if err := json.Unmarshal(r.Value, &v); err != nil {
		t.Fatalf("value %s is not JSON: %v", r.Value, err)
	}
	if v.ID != r.EventID || v.Seq != 17 || "c-"+strings.TrimPrefix(string(r.Key), "key-") != v.Customer {
		t.Errorf("value %s disagrees with record (key %s)", r.Value, r.Key)
	}
	if _, err := v.Amount.Float64(); err != nil {
		t.Errorf("amount %q: %v", v.Amount, err)
	}
}

func TestPayloadSize(t *testing.T) {
	for _, size := range []int{100, 1000, 10000} {
		r := Event("orders", Config{PayloadBytes: size}, 123456)
		if len(r.Value) != size {
			t.Errorf("PayloadBytes %d: value is %d bytes", size, len(r.Value))
		}
	}
	// Below the fixed fields' size the value is as small as it can be.
	if r := Event("orders", Config{PayloadBytes: 1}, 3); len(r.Value) > 100 || !json.Valid(r.Value) {
		t.Errorf("tiny payload gave %q", r.Value)
	}
}

func TestKeyCardinality(t *testing.T) {
	for _, card := range []int{1, 7, 1000} {
		keys := map[string]bool{}
		for i := range int64(3 * card) {
			keys[string(Event("orders", Config{KeyCardinality: card, Seed: 9}, i).Key)] = true
		}
		if len(keys) != card {
			t.Errorf("cardinality %d: saw %d distinct keys", card, len(keys))
		}
	}
}

func TestPollSequenceAndSeek(t *testing.T) {
	cfg := Config{Seed: 3}
	g := newGen(t, cfg)
	var got []*connector.Record
	for len(got) < 25 {
		got = append(got, poll(t, g, 10)...)
	}
	for i, r := range got {
		if want := Event("orders", cfg, int64(i)); !reflect.DeepEqual(r, want) {
			t.Fatalf("record %d = %+v, want %+v", i, r, want)
		}
	}

	g.Seek(connector.Checkpoint{{Topic: "generator:orders", Partition: 0}: 7})
	if r := poll(t, g, 1); len(r) != 1 || r[0].Origin.Offset != 7 {
		t.Fatalf("after Seek(7) got %v", r)
	}
	g.Seek(connector.Checkpoint{{Topic: "other", Partition: 0}: 7})
	if r := poll(t, g, 1); len(r) != 1 || r[0].Origin.Offset != 0 {
		t.Fatalf("after Seek without our partition got %v, want offset 0", r)
	}
}

func TestPollStopsAtCount(t *testing.T) {
	g := newGen(t, Config{Count: 5})
	if r := poll(t, g, 3); len(r) != 3 {
		t.Fatalf("first poll got %d", len(r))
	}
	if r := poll(t, g, 10); len(r) != 2 || r[1].Origin.Offset != 4 {
		t.Fatalf("second poll got %d records", len(r))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if r, err := g.Poll(ctx, 10); r != nil || err != nil {
		t.Fatalf("poll past count = %v, %v; want nil, nil", r, err)
	}
	g.Seek(connector.Checkpoint{{Topic: g.Origin()}: 4})
	if r := poll(t, g, 10); len(r) != 1 || r[0].Origin.Offset != 4 {
		t.Fatalf("after rewind got %v", r)
	}
}

func TestPollRate(t *testing.T) {
	const count = 1000
	g := newGen(t, Config{Count: count, Rate: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	total := 0
	for ctx.Err() == nil {
		r, err := g.Poll(ctx, count)
		if err != nil {
			t.Fatal(err)
		}
		total += len(r)
	}
	// About 6 are due in 50ms; only the bounds that cannot flake are asserted.
	if total < 1 || total >= count {
		t.Fatalf("rate 100/s for 50ms emitted %d of %d", total, count)
	}

	// A rewind replays already-produced events without waiting.
	g.Seek(nil)
	if r := poll(t, g, count); len(r) < total {
		t.Fatalf("replay after rewind returned %d, want the %d already produced", len(r), total)
	}
}

func TestClose(t *testing.T) {
	g := newGen(t, Config{})
	g.Close()
	if _, err := g.Poll(context.Background(), 1); err != ErrClosed {
		t.Fatalf("Poll after Close = %v, want ErrClosed", err)
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run("payload="+strconv.Itoa(size), func(b *testing.B) {
			g, err := New("bench", Config{PayloadBytes: size})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(size))
			n := 0
			for b.Loop() {
				if n == 0 {
					recs, err := g.Poll(ctx, 500)
					if err != nil {
						b.Fatal(err)
					}
					n = len(recs)
				}
				n--
			}
		})
	}
	b.Run("Event", func(b *testing.B) {
		b.ReportAllocs()
		var i int64
		for b.Loop() {
			Event("bench", Config{}, i)
			i++
		}
	})
}

func TestFillerPattern(t *testing.T) {
	for _, seq := range []int64{0, 1, 25, 26, 12345, -1} {
		got := appendFiller(nil, seq, 60)
		for j, c := range got {
			if want := byte('a' + ((seq+int64(j)*7)%26+26)%26); c != want {
				t.Fatalf("seq %d: filler[%d] = %c, want %c", seq, j, c, want)
			}
		}
	}
}
