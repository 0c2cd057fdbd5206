package faults

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSoak runs random combinations of the catalogue's faults, scenario
// after scenario on one cluster, for SOAK_MINUTES, drawn from SOAK_SEED
// (random if unset). The seed is printed first: SOAK_SEED=<seed> replays
// the same schedule. Results go to RESULTS-soak.md here (not committed).
// `make soak` runs it.
//
// Needs: dockerd and the test images (`make services images`).
func TestSoak(t *testing.T) {
	minutes := os.Getenv("SOAK_MINUTES")
	if minutes == "" {
		t.Skip("the soak runs on request: SOAK_MINUTES=N [SOAK_SEED=S] (make soak)")
	}
	if testing.Short() {
		t.Skip("the soak needs Docker and the test images; skipped with -short")
	}
	m, err := strconv.Atoi(minutes)
	if err != nil || m < 1 {
		t.Fatalf("SOAK_MINUTES=%q: want a positive integer", minutes)
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SOAK_SEED"); v != "" {
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", v, err)
		}
	}
	// Printed on stdout as well as the test log: a failure is replayed
	// from this line.
	fmt.Printf("SOAK_SEED=%d SOAK_MINUTES=%d\n", seed, m)
	t.Logf("SOAK_SEED=%d SOAK_MINUTES=%d", seed, m)
	events := eventsPerScenario(t)
	rng := rand.New(rand.NewPCG(seed, seed))
	deadline := time.Now().Add(time.Duration(m) * time.Minute)
	start := time.Now()
	connectdBinary(t)
	e := startEnv(t)

	var rows []Row
	defer func() {
		var buf bytes.Buffer
		header := []string{fmt.Sprintf("Written by `make soak` (TestSoak): SOAK_SEED=%d SOAK_MINUTES=%d, %d events per scenario, wall time %v.",
			seed, m, events, time.Since(start).Round(time.Second))}
		if err := WriteMarkdown(&buf, "Soak results", header, rows); err == nil {
			_ = os.WriteFile("RESULTS-soak.md", buf.Bytes(), 0o644)
			t.Logf("RESULTS-soak.md:\n%s", buf.String())
		}
		fmt.Printf("SOAK_SEED=%d (replay with: make soak SOAK_SEED=%d SOAK_MINUTES=%d)\n", seed, seed, m)
	}()
	for n := 1; time.Now().Before(deadline); n++ {
		sc := randomScenario(rng, n)
		var got []Row
		ok := t.Run(sc.id, func(t *testing.T) {
			t.Logf("soak scenario %s: %s", sc.id, sc.name)
			got = runScenario(t, e, sc, events, rng.Uint64())
		})
		rows = append(rows, got...)
		if !ok {
			t.Logf("scenario %s failed (SOAK_SEED=%d); the soak goes on", sc.id, seed)
		}
	}
}

// randomScenario draws one to three faults from the catalogue and an
// input mix. Faults that need particular timeouts bring them along.
func randomScenario(rng *rand.Rand, n int) scenario {
	type entry struct {
		name string
		make func(sc *scenario) step
	}
	catalogue := []entry{
		{"SIGTERM", func(*scenario) step { return sigterm(1 + rng.IntN(3)) }},
		{"SIGKILL", func(*scenario) step { return sigkill(1 + rng.IntN(3)) }},
		{"SIGKILL in the at-least-once window", func(*scenario) step { return heldKill() }},
		{"SIGSTOP", func(*scenario) step { return sigstop(0) }},
		{"broker SIGKILL", func(*scenario) step { return brokerKill() }},
		{"rolling restart", func(*scenario) step { return rollingRestart() }},
		{"partition", func(*scenario) step { return partition(15 * time.Second) }},
		{"PostgreSQL partition", func(*scenario) step { return pgPartition(15 * time.Second) }},
		{"latency+drops", func(*scenario) step { return latencyDrop(15*time.Second, 30*time.Millisecond, 0.05) }},
		{"PostgreSQL restart", func(*scenario) step { return pgRestart() }},
		{"Redis SIGKILL", func(sc *scenario) step {
			if rng.IntN(2) == 0 {
				sc.redisFsync = "everysec"
				sc.include = func(sink, g string) bool { return sink != "redis" || g == "exactly_once" }
				sc.skipped = "at-least-once into Redis with appendfsync everysec is not durable"
			}
			return redisKill(1 + rng.IntN(3))
		}},
		{"txn-timeout stall", func(sc *scenario) step {
			sc.sessionTimeout, sc.txnTimeout = "30s", "8s"
			return stall(14 * time.Second)
		}},
		{"churn", func(*scenario) step { return churn(4+rng.IntN(6), 3*time.Second) }},
	}
	sc := scenario{id: fmt.Sprintf("soak%03d", n)}
	var names []string
	for _, i := range rng.Perm(len(catalogue))[:1+rng.IntN(3)] {
		sc.faults = append(sc.faults, catalogue[i].make(&sc))
		names = append(names, catalogue[i].name)
	}
	sc.input = inputSpec{
		abortEvery:  []int{0, 3, 10}[rng.IntN(3)],
		poisonEvery: []int{0, 20, 200}[rng.IntN(3)],
	}
	sc.name = fmt.Sprintf("%s: %s (abort 1/%d, poison 1/%d)", sc.id, strings.Join(names, " + "), sc.input.abortEvery, sc.input.poisonEvery)
	return sc
}
