package bounded

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

func TestParse(t *testing.T) {
	if u, err := Parse("end"); err != nil || !u.End || u.String() != "end" {
		t.Fatalf("end: %+v %v", u, err)
	}
	if u, err := Parse("2026-12-04T12:00:00Z"); err != nil || u.End || !u.Time.Equal(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("time: %+v %v", u, err)
	}
	if _, err := Parse("tomorrow"); err == nil {
		t.Fatal("tomorrow parsed")
	}
}

// Stops: with end, each partition's last stable offset (records of an
// open transaction are not readable yet); with a time, the first offset
// stamped at or after it; a missing topic is an error naming it.
func TestStops(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	base := time.UnixMilli(1_000_000)
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "in", Partition: 0, Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	recs = append(recs, &kgo.Record{Topic: "in", Partition: 1, Timestamp: base})
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// An open transaction on partition 1: its record is past the end.
	tx, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("open"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Topic: "in", Partition: 1}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	p0, p1 := connector.TopicPartition{Topic: "in", Partition: 0}, connector.TopicPartition{Topic: "in", Partition: 1}

	end, err := Stops(ctx, adm, []string{"in"}, Until{End: true})
	if err != nil || end[p0] != 10 || end[p1] != 1 {
		t.Fatalf("end: %v %v, want in/0 at 10, in/1 at 1 (before the open transaction)", end, err)
	}
	at, err := Stops(ctx, adm, []string{"in"}, Until{Time: base.Add(4 * time.Second)})
	if err != nil || at[p0] != 4 || at[p1] != 1 {
		t.Fatalf("at +4s: %v %v, want in/0 at 4, in/1 at its end 1", at, err)
	}
	if _, err := Stops(ctx, adm, []string{"nope"}, Until{End: true}); err == nil {
		t.Fatal("a missing topic gave stops")
	}
	n, parts := Remaining(connector.Checkpoint{p0: 7}, end, connector.Checkpoint{p0: 0, p1: 0})
	if n != 4 || parts != 2 {
		t.Fatalf("remaining %d records in %d partitions, want 3+1 in 2", n, parts)
	}
}
