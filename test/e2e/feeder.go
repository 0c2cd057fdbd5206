package e2e

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Feeder produces input in the background, keeping the connector's backlog
// (records produced and not yet committed) at least FeedAhead records
// long: a fault injected at any moment meets a full batch in flight, on a
// fast quiet machine as on a slow loaded one.
type Feeder struct {
	next     int // the next record to produce; read after Stop
	err      error
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// FeedAhead is the backlog a Feeder keeps, and FeedChunk the records it
// produces at a time: several batches of the suites' 400–500 records.
const (
	FeedAhead = 5000
	FeedChunk = 1000
)

// Feed starts a Feeder producing records(from, to) from on to topic;
// committed reports how many input records the connector has committed.
// It stops at the latest when the test ends.
func Feed(t testing.TB, c *kfake.Cluster, topic string, from int, records func(from, to int) []*kgo.Record, committed func() int) *Feeder {
	f := &Feeder{next: from, quit: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(f.halt)
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.quit:
				return
			default:
			}
			if f.next-committed() >= FeedAhead {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if f.err = ProduceRecords(c, topic, records(f.next, f.next+FeedChunk)); f.err != nil {
				return
			}
			f.next += FeedChunk
		}
	}()
	return f
}

// Stop stops the feeder and returns how many records the topic holds.
func (f *Feeder) Stop(t testing.TB) int {
	t.Helper()
	f.halt()
	if f.err != nil {
		t.Fatalf("feeding the input: %v", f.err)
	}
	return f.next
}

func (f *Feeder) halt() {
	f.stopOnce.Do(func() { close(f.quit) })
	<-f.done
}
