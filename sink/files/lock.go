package files

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/connectd/connectd/connector"
)

// dirLock is the exclusive flock on <path>/_connectd/lock that every
// claim, commit, offsets change and probe read holds: one process (or
// store) at a time reads and replaces a manifest, so the compare-and-set
// of a commit is a plain read, compare and write. The kernel releases the
// lock when its holder dies, SIGKILL included; a holder frozen with it
// (SIGSTOP) blocks the others until their wait runs out, which aborts
// their batch (Abortable) for a retry, as a PostgreSQL row lock would.
type dirLock struct{ f *os.File }

// lock takes the lock, waiting at most timeout (and never past ctx).
func lock(ctx context.Context, root string, timeout time.Duration) (*dirLock, error) {
	if err := os.MkdirAll(filepath.Join(root, metaDir), 0o755); err != nil {
		return nil, connector.NewCommitError(connector.Abortable, "lock", err)
	}
	f, err := os.OpenFile(filepath.Join(root, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, connector.NewCommitError(connector.Abortable, "lock", err)
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &dirLock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, connector.NewCommitError(connector.Abortable, "lock", err)
		}
		if !time.Now().Before(deadline) {
			f.Close()
			return nil, connector.NewCommitError(connector.Abortable, "lock",
				fmt.Errorf("%s is held by another process for more than lock_timeout %v", filepath.Join(root, lockFile), timeout))
		}
		t := time.NewTimer(min(wait, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, connector.NewCommitError(connector.Abortable, "lock", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// unlock releases the lock (closing the file releases the flock).
func (l *dirLock) unlock() { l.f.Close() }
