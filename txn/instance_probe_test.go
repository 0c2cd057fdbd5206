package txn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// TestExplainFenceNamesAnInstanceIDConflict: two clients join one group with
// the same group.instance.id, as two processes given one instance_id do.
// The second join replaces the first member; a fenced commit of the first
// must then be reported as an instance_id conflict, while the same fence
// seen by the member that holds the instance ID stays a plain fence.
func TestExplainFenceNamesAnInstanceIDConflict(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const group = "g"
	join := func() *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumerGroup(group),
			kgo.ConsumeTopics("in"), kgo.InstanceID("connectd-copy-0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			cl.PollFetches(ctx) // drives the join
			cancel()
			if _, gen := cl.GroupMetadata(); gen >= 0 {
				return cl
			}
			if time.Now().After(deadline) {
				t.Fatal("the client did not join the group")
			}
		}
	}
	older := join()
	newer := join()

	fence := connector.NewCommitError(connector.Fenced, "commit", errors.New("a newer claim holds the partitions"))
	ctx := context.Background()
	got := explainFence(ctx, older, group, fence)
	if !errors.Is(got, connector.ErrInstanceIDConflict) || connector.KindOf(got) != connector.Fenced {
		t.Fatalf("replaced member: %v; want a fenced instance_id conflict", got)
	}
	if got := explainFence(ctx, newer, group, fence); got != fence {
		t.Fatalf("current member: %v; want the fence unchanged", got)
	}
	abortable := connector.NewCommitError(connector.Abortable, "commit", errors.New("serialization failure"))
	if got := explainFence(ctx, older, group, abortable); got != abortable {
		t.Fatalf("an abortable error was rewritten: %v", got)
	}
}
