package txn

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupCloseGivesUp: a group client whose close does not end even
// after its member was removed from the group (here its revoke callback
// blocks, as a close stuck behind a held join did in CI run 67) does not
// hold the stop past closeGiveUpAfter. The member has left the group by
// then, and the close goes on by itself once it can.
func TestGroupCloseGivesUp(t *testing.T) {
	const topic = "in"
	_, seeds, _ := kfakeInput(t, topic, 10)
	defer func(d time.Duration) { closeGiveUpAfter = d }(closeGiveUpAfter)
	closeGiveUpAfter = 2 * time.Second

	revoked, release := make(chan struct{}), make(chan struct{})
	cl, err := kgo.NewClient(seeds, kgo.ConsumerGroup("g-close"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) {
			close(revoked)
			<-release // the close is stuck here until the test ends
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for got := 0; got < 10; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if id, _ := cl.GroupMetadata(); id == "" {
		t.Fatal("no member ID after consuming: not in the group")
	}

	returned := make(chan bool, 1)
	go func() { returned <- closeUnblockingJoin(cl, "g-close", nil) }()
	select {
	case <-revoked:
	case <-ctx.Done():
		t.Fatal("the close never reached the revoke callback: the fault did not bite")
	}
	select {
	case left := <-returned:
		if !left {
			t.Error("the stuck member was not removed from the group")
		}
	case <-ctx.Done():
		t.Fatalf("closeUnblockingJoin still waits for a stuck close %v after it began (bound %v)", 30*time.Second, closeGiveUpAfter)
	}
	close(release)
}
