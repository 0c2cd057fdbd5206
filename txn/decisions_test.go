package txn

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

func TestGIDRoundTrip(t *testing.T) {
	for _, g := range []GID{
		{Connector: "orders", Instance: "host-1", Session: "0a1b2c3d", Seq: 42, Participant: 1},
		{Connector: "a:b", Instance: "it's:odd/100%", Session: "ff", Seq: 0, Participant: 0},
	} {
		s := g.String()
		if len(s) > MaxGIDLength {
			t.Fatalf("%q is longer than PostgreSQL takes", s)
		}
		for _, c := range s {
			if c == '\'' {
				t.Fatalf("%q has a quote", s)
			}
		}
		got, err := ParseGID(s)
		if err != nil || got != g {
			t.Fatalf("ParseGID(%q) = %+v, %v; want %+v", s, got, err, g)
		}
		if s[:len(GIDPrefix(g.Connector))] != GIDPrefix(g.Connector) {
			t.Fatalf("%q does not start with its connector's prefix", s)
		}
	}
	// One connector's prefix is never another's: "a" must not list "ab".
	if g := (GID{Connector: "ab", Instance: "i", Session: "s"}).String(); g[:len(GIDPrefix("a"))] == GIDPrefix("a") {
		t.Fatalf("%q starts with connector a's prefix", g)
	}
	for _, bad := range []string{"", "connectd:a:b", "other:a:b:c:1:0", "connectd:a:b:c:x:0", "connectd:%zz:b:c:1:0"} {
		if _, err := ParseGID(bad); err == nil {
			t.Errorf("ParseGID(%q) accepted it", bad)
		}
	}
}

// LoadDecisions sees only committed decisions, the latest per instance,
// and only this connector's; offsets records in the same topic are not
// decisions and decisions are not offsets.
func TestLoadDecisions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := &OffsetsTopic{Topic: "_offsets", Connector: "c", Brokers: c.ListenAddrs()}
	other := &OffsetsTopic{Topic: "_offsets", Connector: "other", Brokers: c.ListenAddrs()}
	if err := o.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	txn := func(commit bool, recs ...*kgo.Record) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	cp := connector.Checkpoint{{Topic: "in", Partition: 0}: 5}
	txn(true, append(o.Records(cp), o.DecisionRecord("i1", []string{"g1"}))...)
	txn(true, o.DecisionRecord("i1", []string{"g2", "g3"}))     // i1's latest
	txn(false, o.DecisionRecord("i1", []string{"g4"}))          // aborted
	txn(true, o.DecisionRecord("i2", []string{"g5"}))           // another instance
	txn(true, other.DecisionRecord("i1", []string{"not-ours"})) // another connector
	got, err := o.LoadDecisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got["g2"] || !got["g3"] || !got["g5"] {
		t.Fatalf("decisions %v, want g2 g3 (i1's latest) and g5 (i2's)", got)
	}
	loaded, err := o.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[connector.TopicPartition{Topic: "in"}] != 5 {
		t.Fatalf("checkpoint %v, want in/0=5 only (decision records are not offsets)", loaded)
	}
}
