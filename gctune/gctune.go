// Package gctune lets connectd's garbage collector use memory the process
// has to spare: with a small live heap it collects less often than Go's
// default (GOGC 100), within a heap budget, and never more often.
//
// Why: a connector's live heap is small (a batch, fetch buffers: 30-40 MiB
// at the shipped defaults) while it allocates fast (decompressed fetches,
// produce buffers), so with GOGC 100 the collector runs every 30-40 MiB of
// allocation and took about a quarter of connectd's CPU in the Kafka →
// Kafka benchmark (issue 17), on machines where the broker shares the
// cores. Raising GOGC alone would let the heap grow with the live heap
// without bound; GOMEMLIMIT alone would make the collector run flat out
// once the live heap nears the limit. The tuner does neither: after each
// look at the live heap it sets GOGC so that the next heap target is the
// budget, clamped to [MinPercent, MaxPercent]. With a live heap past half
// the budget it is Go's default again.
//
// An operator's own GOGC or GOMEMLIMIT wins: the tuner does not start.
package gctune

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// applied is the GOGC a running tuner set last (0: none running).
var applied atomic.Int32

// Applied is the GOGC the running tuner set last, 0 if none runs.
func Applied() int { return int(applied.Load()) }

const (
	// MinPercent is Go's default: the tuner never collects more often.
	MinPercent = 100
	// MaxPercent bounds how rarely it collects. 300 took connectd's CPU
	// per record from 1.8 to 1.4 µs in the benchmark (issue 17) with a
	// peak RSS of 156-159 MiB; higher gained nothing measurable.
	MaxPercent = 300
	// DefaultBudget is the heap target the tuner aims at: peak RSS stays
	// under 200 MiB at the shipped defaults (issue 17's target).
	DefaultBudget = 160 << 20
	// interval is how often the live heap is looked at: often enough to
	// follow a batch-sized change, cheap (one runtime/metrics read).
	interval = 100 * time.Millisecond
)

// Percent is the GOGC that makes a heap with live bytes grow to budget
// before the next collection, clamped to [MinPercent, MaxPercent].
func Percent(live, budget uint64) int {
	if live == 0 || budget <= live {
		return MinPercent
	}
	p := (budget - live) * 100 / live
	return int(min(max(p, MinPercent), MaxPercent))
}

// Disabled reports why the tuner must not run, or "" if it may: the
// operator set GOGC or GOMEMLIMIT, or budget is 0.
func Disabled(budget uint64) string {
	switch {
	case os.Getenv("GOGC") != "":
		return "GOGC is set"
	case os.Getenv("GOMEMLIMIT") != "":
		return "GOMEMLIMIT is set"
	case budget == 0:
		return "the heap budget is 0"
	}
	return ""
}

// Run tunes GOGC toward budget until ctx ends, then restores what GOGC was.
// Callers check Disabled first.
func Run(ctx context.Context, budget uint64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	prev := debug.SetGCPercent(MinPercent)
	set := MinPercent
	applied.Store(int32(set))
	defer func() {
		debug.SetGCPercent(prev)
		applied.Store(0)
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if p := Percent(sample[0].Value.Uint64(), budget); p != set {
				debug.SetGCPercent(p)
				set = p
				applied.Store(int32(p))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
