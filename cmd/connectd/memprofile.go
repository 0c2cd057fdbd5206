package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// peakHeapInterval is how often startPeakHeapProfile looks at the heap: a
// batch fills and drains over tens to hundreds of milliseconds.
const peakHeapInterval = 50 * time.Millisecond

// startPeakHeapProfile writes to path the heap profile taken when the
// heap was at its highest during the run (--memprofile, for `go tool
// pprof -sample_index=inuse_space`). Why at the peak: peak RSS is what the
// benchmark's memory target judges, and a profile taken at exit shows an
// idle heap. The heap is looked at every peakHeapInterval; a profile is
// taken (in memory) each time it passes the highest seen by 5%, and the
// last one is written when the returned stop runs, at a clean stop. A
// heap profile's in-use figures are as of the last completed collection,
// so the peak it shows can trail the true one by one collection cycle.
func startPeakHeapProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--memprofile: %w", err)
	}
	done := make(chan struct{})
	written := make(chan error, 1)
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		var best bytes.Buffer
		t := time.NewTicker(peakHeapInterval)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value; v.Kind() == metrics.KindUint64 && v.Uint64() > peak+peak/20 {
				peak = v.Uint64()
				best.Reset()
				_ = pprof.Lookup("heap").WriteTo(&best, 0)
			}
			select {
			case <-done:
				_, werr := f.Write(best.Bytes())
				if cerr := f.Close(); werr == nil {
					werr = cerr
				}
				written <- werr
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		if err := <-written; err != nil {
			fmt.Fprintln(os.Stderr, "connectd run: --memprofile:", err)
		}
	}, nil
}
