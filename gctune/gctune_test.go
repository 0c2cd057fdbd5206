package gctune

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, budget uint64
		want         int
	}{
		{35 * mib, 160 * mib, MaxPercent}, // connectd at the defaults: 357 clamped
		{64 * mib, 160 * mib, 150},        // the heap target is the budget
		{80 * mib, 160 * mib, 100},        // half the budget: Go's default
		{120 * mib, 160 * mib, MinPercent},
		{200 * mib, 160 * mib, MinPercent}, // past the budget: never below the default
		{0, 160 * mib, MinPercent},
	} {
		if got := Percent(tc.live, tc.budget); got != tc.want {
			t.Errorf("Percent(%d MiB, %d MiB) = %d, want %d", tc.live/mib, tc.budget/mib, got, tc.want)
		}
	}
}

func TestDisabledByOperator(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	if why := Disabled(DefaultBudget); why != "" {
		t.Fatalf("disabled without a reason: %s", why)
	}
	if Disabled(0) == "" {
		t.Error("a 0 budget does not disable the tuner")
	}
	t.Setenv("GOGC", "50")
	if Disabled(DefaultBudget) == "" {
		t.Error("the operator's GOGC does not disable the tuner")
	}
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "1GiB")
	if Disabled(DefaultBudget) == "" {
		t.Error("the operator's GOMEMLIMIT does not disable the tuner")
	}
}

// With this test binary's small live heap, Run raises GOGC to MaxPercent,
// and restores the previous setting when it stops.
func TestRunRaisesAndRestores(t *testing.T) {
	before := debug.SetGCPercent(77)
	defer debug.SetGCPercent(before)
	runtime.GC() // a live-heap figure to read
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, 1<<30); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for Applied() != MaxPercent {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the tuner applied GOGC %d, want %d", Applied(), MaxPercent)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p := debug.SetGCPercent(MaxPercent); p != MaxPercent {
		t.Fatalf("GOGC is %d while the tuner says it applied %d", p, MaxPercent)
	}
	cancel()
	<-done
	if p := debug.SetGCPercent(before); p != 77 {
		t.Fatalf("GOGC after Run = %d, want the 77 it found", p)
	}
}
