package faults

import (
	"fmt"
	"strings"
	"time"
)

// Work in flight for a fault that strikes one process (loadUp).
const (
	// busyLag is the input, in events, that each connector loadUp waits
	// for must have read and not committed, or not read yet, on the
	// process when the fault strikes.
	busyLag = 1000
	// busyBurst is the input written at once when that lag is missing.
	busyBurst = 10000
)

// loadUp returns once every connector that want selects (windowed ones
// never) has at least busyLag events of lag on in's partitions (its scraped
// connectd_consumer_lag_records), asking the input producer for a burst
// whenever it has not; it gives up after a minute and says so, and the
// scenario's own checks then say whether the fault bit. A process whose
// connectors had caught up with the input holds nothing in flight when a
// fault strikes it: in a CI run, s03 froze such an instance and no
// at_least_once connector duplicated.
func (r *run) loadUp(in *instance, want func(*conn) bool) {
	r.t.Helper()
	var names []string
	for _, c := range r.conns {
		if want(c) && !c.setup.window {
			names = append(names, c.name)
		}
	}
	deadline := time.Now().Add(time.Minute)
	nextBurst := time.Now()
	last := "no scrape"
	for time.Now().Before(deadline) {
		lags, err := scrapeLags(in)
		if err != nil {
			last = err.Error()
		} else {
			var parts []string
			busy := true
			for _, name := range names {
				parts = append(parts, fmt.Sprintf("%s lag %d", name, lags[name]))
				busy = busy && lags[name] >= busyLag
			}
			last = strings.Join(parts, ", ")
			if busy {
				return
			}
		}
		if time.Now().After(nextBurst) {
			r.prod.burst(busyBurst)
			nextBurst = time.Now().Add(3 * time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.logf("instance %s: its connectors did not get %d events of lag within a minute (%s); the fault strikes anyway", in.letter(), busyLag, last)
}

// scrapeLags sums connectd_consumer_lag_records per connector on in.
func scrapeLags(in *instance) (map[string]int, error) {
	body, err := metricsText(in)
	if err != nil {
		return nil, err
	}
	lags := map[string]int{}
	for line := range strings.SplitSeq(body, "\n") {
		if !strings.HasPrefix(line, "connectd_consumer_lag_records{") {
			continue
		}
		_, labels, v, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		lags[labels["connector"]] += int(v)
	}
	return lags, nil
}
