package txn

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// A batch begins only once every promise of the previous one has been
// called, so an aborted batch's late AbortBufferedRecords cannot fail it,
// and then reuses the previous batch's output records. A promise never
// called holds begin for settleWait at most, and its record is not reused.
func TestBeginSettlesThePreviousBatch(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")) // never dialled: nothing is produced
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	defer func(d time.Duration) { settleWait = d }(settleWait)
	settleWait = 300 * time.Millisecond
	convert := func(b *batchProducer) *kgo.Record {
		return b.conv.Convert(&connector.Record{Value: []byte("v"), EventID: "e"}, "out")
	}

	var b batchProducer
	b.begin(cl)
	first := convert(&b)
	pending := b.promise.Promise() // first is still in a producer: an aborted batch
	began := make(chan struct{})
	go func() {
		b.begin(cl)
		close(began)
	}()
	select {
	case <-began:
		t.Fatal("begin did not wait for the previous batch's promise")
	case <-time.After(100 * time.Millisecond):
	}
	pending(first, kgo.ErrAborting)
	<-began
	second := convert(&b)
	if second != first {
		t.Fatal("the settled batch's record was not reused")
	}

	b.promise.Promise() // never called: second may be held forever
	start := time.Now()
	b.begin(cl)
	if waited := time.Since(start); waited < settleWait {
		t.Fatalf("begin went on after %v, before settleWait (%v)", waited, settleWait)
	}
	if convert(&b) == second {
		t.Fatal("a record a producer may still hold was reused")
	}
}
