package txn

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Failure points of the commit protocols, for the process-level failure
// tests: a connectd process given KillPointEnv or FreezePointEnv sends
// itself SIGKILL or SIGSTOP when it reaches the named point, as "POINT"
// (the first time) or "POINT:N" (the N-th time). Points:
//
//   - after-sink-write: an at_least_once PostgreSQL or Redis sink wrote a
//     batch, its group offsets not committed yet (the window in which a
//     crash duplicates the batch, too short for an outside kill to hit);
//   - after-prepare: every participant prepared, the Kafka transaction
//     (and its decision) not yet committed;
//   - after-decision: the Kafka transaction committed, no COMMIT PREPARED
//     sent yet;
//   - during-recovery: in-doubt transactions listed and their owners
//     fenced, none resolved yet;
//   - promote-after-intent: a Kappa promote saved its intent in the state
//     file, no reader switched yet (package daemon);
//   - promote-after-cutover: readers switched to the replay's outputs, the
//     live connector not yet retired.
//
// Unset, as in production, reaching a point costs one comparison.
const (
	KillPointEnv   = "CONNECTD_KILL_AT"
	FreezePointEnv = "CONNECTD_FREEZE_AT"
)

// failPoint is one configured point and the signal it sends.
type failPoint struct {
	name  string
	nth   int64
	sig   syscall.Signal
	count atomic.Int64
}

var (
	failPointsOnce sync.Once
	failPoints     []*failPoint
)

func loadFailPoints() {
	for env, sig := range map[string]syscall.Signal{KillPointEnv: syscall.SIGKILL, FreezePointEnv: syscall.SIGSTOP} {
		spec := os.Getenv(env)
		if spec == "" {
			continue
		}
		name, n, _ := strings.Cut(spec, ":")
		fp := &failPoint{name: name, nth: 1, sig: sig}
		if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > 0 {
			fp.nth = v
		}
		failPoints = append(failPoints, fp)
	}
}

// Reach is reach for points outside this package.
func Reach(point string) { reach(point) }

// reach is called at each named point. A real signal, not an exit: after
// SIGKILL no deferred function, flush or graceful close runs; after
// SIGSTOP the process resumes here when it gets SIGCONT.
func reach(point string) {
	failPointsOnce.Do(loadFailPoints)
	for _, fp := range failPoints {
		if fp.name != point || fp.count.Add(1) != fp.nth {
			continue
		}
		_ = syscall.Kill(os.Getpid(), fp.sig)
		if fp.sig == syscall.SIGKILL {
			select {} // the signal is on its way; never continue past the point
		}
		// A process-directed SIGSTOP may be taken by another thread
		// first: park this goroutine until the whole process has
		// stopped (microseconds), so nothing after the point (a COMMIT
		// PREPARED, say) runs before the freeze. After SIGCONT it
		// continues from here.
		time.Sleep(100 * time.Millisecond)
	}
}
