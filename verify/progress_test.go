package verify_test

import (
	"context"
	"testing"
	"time"

	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/test/e2e"
	"github.com/connectd/connectd/verify"
)

// TestProgress: a check reports its reading as it goes, never more read
// than known, and ends with everything it read counted: the input up to
// the checkpoint and the output up to its last stable offsets, in offsets
// (so the output's transaction markers count too).
func TestProgress(t *testing.T) {
	c, cfg, n := cleanKafkaRun(t)
	spec, err := pipeline.Decode(cfg.Connectors[0])
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	var read, total int64
	progress := func(r, tot int64) {
		if r < read || tot < total || r > tot {
			t.Errorf("progress %d of %d after %d of %d: must grow, and read stay within the total", r, tot, read, total)
		}
		calls++
		read, total = r, tot
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := verify.Run(ctx, verify.Options{Spec: spec, Brokers: c.ListenAddrs(), ClientOpts: e2e.FastClient, Stopped: true, Progress: progress})
	if err != nil || !rep.Clean() {
		t.Fatalf("verify: %s, %v", rep, err)
	}
	adm, actx := admin(t, c)
	out, err := adm.ListCommittedOffsets(actx, "out")
	if err == nil {
		err = out.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	var outEnd int64
	for _, parts := range out {
		for _, o := range parts {
			outEnd += o.Offset
		}
	}
	if want := int64(n) + outEnd; read != want || total != want {
		t.Fatalf("progress ended at %d of %d, want %d of %d (input %d, output to its last stable offsets %d)", read, total, want, want, n, outEnd)
	}
	t.Logf("%d progress calls, ending at %d of %d", calls, read, total)
}
