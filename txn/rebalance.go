package txn

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rebalanceWatch follows one consumer-group client through its group's
// rebalances. franz-go does not expose its group manager's state, so the
// watch reads it from what the client does tell:
//
//   - joining: the client wrote a JoinGroup request, and has not yet read
//     the SyncGroup answer that starts its next session. A commit of the
//     group offsets (in a transaction or not) waits that long: franz-go
//     holds it during join and sync. This is what the connector asks
//     (connector.GroupCommitter), and done is closed when it ends.
//   - held: the manager asked to get past BlockRebalanceOnPoll's gate
//     (kgo.OnPartitionsCallbackBlocked) while the open batch holds it: a
//     heartbeat answered REBALANCE_IN_PROGRESS, the member was removed from
//     the group, or a rebalance's revoke or assign step waits (a protocol
//     with an OnPartitionsAssigned callback gates assignment too). Only
//     KafkaGroupTxn.Commit uses it, and only to let such a manager through
//     if End seems to wait for it: it is cleared at the next SyncGroup
//     answer, which an assign step is not followed by.
type rebalanceWatch struct {
	log *slog.Logger

	mu      sync.Mutex
	joining bool
	done    chan struct{} // while joining; closed at the SyncGroup answer
	held    bool
	onHeld  func() // see allowWhileHeld
}

func newRebalanceWatch(log *slog.Logger) *rebalanceWatch {
	return &rebalanceWatch{log: log}
}

// opts are the client options that feed the watch; hooks add to a
// client's hooks, and nothing else sets OnPartitionsCallbackBlocked.
func (w *rebalanceWatch) opts() []kgo.Opt {
	return []kgo.Opt{
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) {
			w.mu.Lock()
			first := !w.held
			w.held = true
			allow := w.onHeld
			w.mu.Unlock()
			if first {
				w.log.Info("the consumer group waits for the open batch to end (a rebalance, or this member was removed from the group)")
			}
			if allow != nil {
				allow()
			}
		}),
		kgo.WithHooks(w),
	}
}

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (w *rebalanceWatch) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key != kmsg.JoinGroup.Int16() || err != nil {
		return
	}
	w.mu.Lock()
	first := !w.joining
	w.joining = true
	if w.done == nil {
		w.done = make(chan struct{})
	}
	w.mu.Unlock()
	if first {
		w.log.Info("joining the consumer group (a rebalance)")
	}
}

// OnBrokerRead implements kgo.HookBrokerRead.
func (w *rebalanceWatch) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key != kmsg.SyncGroup.Int16() || err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held, w.joining = false, false
	if w.done != nil {
		close(w.done)
		w.done = nil
	}
}

// inJoin returns, while a JoinGroup or SyncGroup is in flight, a channel
// closed when the SyncGroup answer is read; nil otherwise.
func (w *rebalanceWatch) inJoin() <-chan struct{} {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done
}

// heldGrace is how long KafkaGroupTxn.Commit keeps the gate closed on a
// group manager that has come to wait at it (see there). End takes a few
// round trips; a longer End only loses what keeping the gate closed gains.
const heldGrace = time.Second

// allowWhileHeld calls allow (the client's AllowRebalance) once the group
// manager has waited at BlockRebalanceOnPoll's gate for grace, until the
// returned function is called.
func (w *rebalanceWatch) allowWhileHeld(allow func(), grace time.Duration) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		timer   *time.Timer
	)
	arm := func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped && timer == nil {
			timer = time.AfterFunc(grace, allow)
		}
	}
	w.mu.Lock()
	w.onHeld = arm
	held := w.held
	w.mu.Unlock()
	if held {
		arm()
	}
	return func() {
		w.mu.Lock()
		w.onHeld = nil
		w.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if timer != nil {
			timer.Stop()
		}
	}
}

var (
	_ kgo.HookBrokerWrite = (*rebalanceWatch)(nil)
	_ kgo.HookBrokerRead  = (*rebalanceWatch)(nil)
)

// joinKickAfter is how long a closing group client may take before
// closeUnblockingJoin removes its member from the group. A close that
// waits for nobody takes a few milliseconds.
const joinKickAfter = 500 * time.Millisecond

// closeGiveUpAfter bounds how long a stop waits for a group client's close
// when removing the member did not end it: past it, the stop goes on and
// the close finishes (or the process exits) on its own. The member then
// leaves as after a crash, when its session times out; nothing
// transactional waits on the close (see closeUnblockingJoin). CI run 67's
// fault matrix saw a restarted process's SIGTERM stop wait over 40 s in two
// such closes, static members whose first join was still held.
var closeGiveUpAfter = 20 * time.Second // a var: the test shortens it

// closeUnblockingJoin closes cl (letting a held rebalance through first)
// and makes sure the close does not wait for the rest of the group.
//
// The wait it removes is franz-go's: the group manager sends JoinGroup
// with the client's context, which Close cancels only after the group is
// left, and leaving waits for the manager, which waits for the JoinGroup's
// answer (pkg/kgo consumer_group.go, joinAndSync: "we have to use the
// client context, not the group context"). The coordinator answers a
// JoinGroup only once every member has rejoined or the rebalance timeout
// (60s) has passed, so a member stopping during a rebalance waited for its
// slowest peer: one in a long batch or commit, or paused.
//
// So while the close has not finished, every joinKickAfter the member is
// removed from the group by its member ID (and instance ID, if static):
// the coordinator then answers the pending JoinGroup with
// UNKNOWN_MEMBER_ID, and the closing manager, whose group context is
// cancelled by then, does not join again (if it did, before the cancel,
// the next removal takes its new member ID). It reports whether a removal
// succeeded, after which the member has left the group.
//
// Nothing transactional depends on this: the open transaction, if any, was
// ended before, and whatever a removed member still had open is fenced by
// its producer epoch and the group generation as after any expulsion.
func closeUnblockingJoin(cl *kgo.Client, group string, instance *string) (left bool) {
	closed := make(chan struct{})
	go func() {
		cl.CloseAllowingRebalance()
		close(closed)
	}()
	var side *kgo.Client
	defer func() {
		if side != nil {
			side.Close()
		}
	}()
	tick := time.NewTicker(joinKickAfter)
	defer tick.Stop()
	giveUp := time.NewTimer(closeGiveUpAfter)
	defer giveUp.Stop()
	for {
		select {
		case <-closed:
			return left
		case <-giveUp.C:
			// The close goes on in its goroutine; the stop does not
			// wait for it (see closeGiveUpAfter).
			return left
		case <-tick.C:
		}
		memberID, _ := cl.GroupMetadata()
		// A static member whose first JoinGroup is still unanswered has
		// no member ID yet: the coordinator holds that join (it replaces
		// the previous incarnation of the instance) until the rebalance
		// ends. It is removed by its instance ID alone, as the admin
		// API's member removal does (KIP-345); a dynamic member without
		// a member ID is not in the group yet.
		if group == "" || (memberID == "" && instance == nil) {
			continue
		}
		if side == nil {
			var err error
			if side, err = kgo.NewClient(connectionOptions(cl.Opts())...); err != nil {
				side = nil
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), LeaveTimeout)
		if leaveGroup(ctx, side, group, instance, memberID) == nil {
			left = true
		}
		cancel()
	}
}
