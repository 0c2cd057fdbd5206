package redis

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
)

// classify turns a failure to run a script (or a pipeline) into a
// *connector.CommitError:
//
//   - Abortable when the command provably did not run: no connection could
//     be had (dial error, pool timeout, client closed), or the server
//     refused the script before running it (OOM, READONLY, LOADING, BUSY,
//     MASTERDOWN, ...: with a "#!lua" shebang these are checked before the
//     first command).
//   - Fatal for any other error reply: the script was refused for a reason
//     a retry cannot fix (NOPERM, WRONGPASS, a compile error), or it failed
//     while running, and then — Redis does not roll a script back — the
//     batch may be partly applied, which the message says.
//   - CommitUnknown for everything else (a timeout, a reset or closed
//     connection, EOF, a cancelled context): the script may have run.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connector.CommitError
	if errors.As(err, &ce) {
		return err
	}
	if notSent(err) {
		return connector.NewCommitError(connector.Abortable, op, err)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !errors.Is(err, redis.Nil) {
		if refusedBeforeRunning(err) {
			return connector.NewCommitError(connector.Abortable, op, err)
		}
		return connector.NewCommitError(connector.Fatal, op,
			fmt.Errorf("%w (if this failed while running, part of the batch may be applied: Redis does not roll back)", err))
	}
	return connector.NewCommitError(connector.CommitUnknown, op, err)
}

// notSent reports errors that go-redis returns before writing a command:
// no connection was made or handed out.
func notSent(err error) bool {
	if errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// refusedBeforeRunning reports error replies with which Redis refuses a
// command without executing any of it.
func refusedBeforeRunning(err error) bool {
	if redis.IsOOMError(err) || redis.IsReadOnlyError(err) || redis.IsLoadingError(err) ||
		redis.IsMasterDownError(err) || redis.IsTryAgainError(err) || redis.IsClusterDownError(err) ||
		redis.IsMaxClientsError(err) || redis.IsNoReplicasError(err) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "BUSY ") || strings.HasPrefix(msg, "NOSCRIPT ")
}

// WrongTypeError is a batch refused because a key it writes holds another
// type (or an apply counter holds a non-integer). Nothing of the batch was
// written. It is Fatal: the key belongs to someone else's data, which no
// retry changes, and routing the record to the dead-letter queue would
// make the outcome depend on the state of Redis instead of on the input.
type WrongTypeError struct {
	Key    string
	Found  string
	Wanted string
	// Origin is the record whose write was refused; zero for one of the
	// sink's own keys.
	Origin connector.Origin
}

func (e *WrongTypeError) Error() string {
	who := "the sink's own key"
	if e.Origin != (connector.Origin{}) {
		who = "record " + e.Origin.String()
	}
	return fmt.Sprintf("key %q holds a %s, %s needs a %s; nothing of the batch was written", e.Key, e.Found, who, e.Wanted)
}

// FencedError is a commit refused because a partition was claimed again
// since our claim (a newer claim epoch), or its checkpoint moved.
type FencedError struct {
	Partition string
	Stored    string // "<epoch>:<next>"
	Expected  string
}

func (e *FencedError) Error() string {
	stored := e.Stored
	if stored == "" {
		stored = "nothing"
	}
	return fmt.Sprintf("partition %s: stored %s, expected %s (claim epoch:next offset): a newer claim or a commit we did not see", e.Partition, stored, e.Expected)
}
