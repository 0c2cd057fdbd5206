package txn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// Participant: see connector.Participant.
type Participant = connector.Participant

// TwoPhase is the exactly-once protocol for a connector whose batch must
// land in several sinks at once: an optional Kafka output topic and one or
// more Participants (PostgreSQL tables). It consumes through a
// KafkaGroupTxn, whose transaction carries the output records, the consumed
// offsets (KIP-447) and the decision record.
//
// Order per batch: the output, then the decision record naming the
// participants' gids, are produced into the Kafka transaction (off the
// connector's loop: outputProducer) while every participant prepares
// (phase one); once all have prepared, the Kafka transaction commits (the
// commit point), then COMMIT PREPARED each (phase two). Phase two runs on
// a goroutine of its own (phaseTwo) while the next batch is read and
// prepared; that batch's commit point waits for it, so at most one decided
// batch is ever waiting for its COMMIT PREPARED.
//
//   - Atomic: the Kafka output, the input offsets and the decision commit
//     together; every participant's rows commit iff that happens, possibly
//     later (by recovery) but never otherwise.
//   - Abort: a failed prepare rolls back what was prepared and aborts the
//     Kafka transaction, the decision record in it too: no committed
//     decision can name them. Anything going wrong from the commit point
//     on is left to recovery.
//   - Fencing: the Kafka transaction fails to commit (ProducerFenced, a
//     stale generation): the prepared transactions are left to recovery,
//     which rolls them back because no committed decision names them.
//   - Unknown outcome (the EndTxn or a COMMIT PREPARED unanswered): never
//     assumed. Recover starts a new Kafka session first (the epoch bump
//     completes or aborts the transaction), then resolves from the
//     decisions. A failed phase two fails the next batch before its
//     commit point (that batch is rolled back and read again), and
//     Recover commits the decided one. An Abortable Kafka failure is a
//     known abort: the session is kept, so a rebalance that aborts a
//     batch does not make the member leave and rejoin the group.
//
// Recovery (at start, after every failure, and before the first batch after
// a partition assignment): list the connector's prepared transactions in
// every participant. Ours, and those of instances no longer in the consumer
// group (dead, or frozen past the session timeout), are resolved: fence the
// Kafka transactional ID of every such other instance (InitProducerID bumps
// its epoch, so its open transaction is completed or aborted and it can
// never commit a decision naming them later); read the decisions with
// read_committed; commit what a decision names and roll back the rest.
// Only transactions listed before the fencing are resolved: one prepared
// after it belongs to a transaction the fencing cannot have ended. A live
// member's are left to it (it resolves its own at its next recovery):
// fencing a live member would abort its batch, and its recovery would
// rejoin the group and could fence us back, round after round.
type TwoPhase struct {
	kafka     *KafkaGroupTxn
	parts     []Participant
	decisions *OffsetsTopic
	connector string
	instance  string
	group     string
	// transactionalID maps an instance to its Kafka transactional ID.
	transactionalID func(instance string) string
	// fenceOpts are the client options (seed brokers, timeouts) used to
	// fence another instance's transactional ID.
	fenceOpts []kgo.Opt
	log       *slog.Logger

	session string // new per process: gids never repeat across restarts
	seq     uint64
	buf     []*connector.Record
	checked bool

	// afterAssign is set by the group's assignment callback: the next
	// Begin recovers first, because newly assigned partitions may have a
	// former owner's batch prepared and holding row locks.
	afterAssign atomic.Bool

	// pending is the last decided batch's phase two, nil once awaited.
	pending *phaseTwo

	mu    sync.Mutex
	stats connector.TwoPhaseStatus
}

// TwoPhaseConfig configures a TwoPhase.
type TwoPhaseConfig struct {
	// KafkaOpts are the consumer options of the source plus the
	// transactional producer's (transactional ID, transaction timeout).
	KafkaOpts []kgo.Opt
	// Topic is the Kafka sink's output topic, or "" with no Kafka sink.
	Topic        string
	Participants []Participant
	// Decisions is the offsets topic the decision records go to.
	Decisions *OffsetsTopic
	Connector string
	Instance  string
	// Group is the source's consumer group; every instance's consumer
	// client ID is its transactional ID, so recovery can tell which
	// instances are still members.
	Group           string
	TransactionalID func(instance string) string
	// FenceOpts: seed brokers and test options, for fencing clients.
	FenceOpts []kgo.Opt
	OnFenced  func()
	Log       *slog.Logger
}

// NewTwoPhase returns the protocol.
func NewTwoPhase(c TwoPhaseConfig) *TwoPhase {
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	t := &TwoPhase{
		parts: c.Participants, decisions: c.Decisions, connector: c.Connector, instance: c.Instance, group: c.Group,
		transactionalID: c.TransactionalID, fenceOpts: c.FenceOpts, log: c.Log,
		session: hex.EncodeToString(nonce[:]),
	}
	opts := append(append([]kgo.Opt(nil), c.KafkaOpts...),
		kgo.ClientID(c.TransactionalID(c.Instance)),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { t.afterAssign.Store(true) }))
	t.kafka = NewKafkaGroupTxn(opts, c.Topic, c.Log, c.OnFenced)
	return t
}

var _ connector.Protocol = (*TwoPhase)(nil)

// Client is the consumer of the current session, for the source to poll.
func (t *TwoPhase) Client() *kgo.Client { return t.kafka.Client() }

// GroupRebalance implements connector.GroupCommitter: the decision record
// commits in the Kafka transaction, with the group generation.
func (t *TwoPhase) GroupRebalance() <-chan struct{} { return t.kafka.GroupRebalance() }

// TwoPhaseStatus implements connector.TwoPhaseReporter.
func (t *TwoPhase) TwoPhaseStatus() connector.TwoPhaseStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Begin resolves in-doubt transactions first if partitions were assigned
// since the last batch, then opens the Kafka transaction.
func (t *TwoPhase) Begin(ctx context.Context) error {
	t.buf = t.buf[:0]
	if t.afterAssign.Swap(false) {
		if err := t.resolve(ctx); err != nil {
			t.afterAssign.Store(true)
			return err
		}
	}
	return t.kafka.Begin(ctx)
}

// abortTimeout bounds the Kafka abort after a failed prepare, which runs
// on a deadline of its own: the commit's may be what the prepare spent.
const abortTimeout = 10 * time.Second

// Write queues recs for the Kafka transaction (with a Kafka sink; they are
// produced off the connector's loop, see outputProducer) and keeps them
// for the participants, which write them at Commit.
func (t *TwoPhase) Write(ctx context.Context, recs []*connector.Record) error {
	if t.kafka.out.topic != "" {
		if err := t.kafka.Write(ctx, recs); err != nil {
			return err
		}
	}
	t.buf = append(t.buf, recs...)
	return nil
}

// Commit runs both phases; see TwoPhase.
func (t *TwoPhase) Commit(ctx context.Context, cp connector.Checkpoint) error {
	recs := t.buf
	t.buf = nil
	t.seq++
	gids := make([]string, len(t.parts))
	for i := range t.parts {
		gids[i] = GID{Connector: t.connector, Instance: t.instance, Session: t.session, Seq: t.seq, Participant: i}.String()
	}

	// The decision is handed to the output producer now, behind the
	// output, so that both are produced while the participants prepare.
	// It is in the Kafka transaction, which commits only after every
	// prepare (below) and aborts with it if one fails.
	t.kafka.finishWith(t.decisions.DecisionRecord(t.instance, gids))

	// Phase one. Nothing is visible anywhere yet.
	for i, p := range t.parts {
		if err := p.Prepare(ctx, gids[i], recs); err != nil {
			// What this misses (an unanswered PREPARE) recovery
			// rolls back: no committed decision names it.
			return t.abandon(ctx, gids[:i+1], participantError(p, "prepare", err))
		}
	}
	// The previous batch's phase two ran while this one was read and
	// prepared. Its failure fails this batch before its commit point, so
	// that Recover commits the decided one now instead of leaving its
	// rows prepared, invisible and locked, behind more batches.
	if err := t.awaitPhaseTwo(ctx); err != nil {
		return t.abandon(ctx, gids, err)
	}
	reach("after-prepare")

	// The commit point.
	if err := t.kafka.Commit(ctx, cp); err != nil {
		// The prepared transactions wait for Recover, which resolves
		// them from the decisions. Abortable: the transaction was
		// aborted, so no committed decision names them. Fenced or
		// CommitUnknown: Recover starts a new session first, whose
		// epoch bump completes or aborts the transaction before the
		// decisions are read.
		return err
	}
	reach("after-decision")

	// Phase two. The batch is committed; COMMIT PREPARED makes it visible
	// in the participants, on a goroutine while the loop reads the next
	// batch. A failure there loses nothing: the next commit point, Close
	// or Recover sees it, and Recover commits what the decision names.
	t.pending = t.startPhaseTwo(ctx, gids)
	return nil
}

// abandon ends a batch that failed before its commit point: its prepared
// gids (one per participant, in order) are rolled back and the Kafka
// transaction, with the decision naming them, is aborted. Rolling them back
// is safe whatever the abort does: only the EndTxn of Commit could commit
// that decision, and the abort (or, if that fails, Recover's epoch bump)
// ends the transaction instead.
func (t *TwoPhase) abandon(ctx context.Context, gids []string, cause error) error {
	t.rollbackAll(ctx, gids)
	// A prepare that timed out has spent ctx: the abort gets a deadline
	// of its own. If it fails all the same, the Kafka transaction may
	// still be open and the session's consumer not rewound: kept, that
	// session would commit the next batch's offsets past this one, whose
	// output never commits (records lost in every sink). The outcome is
	// unknown, so Recover must start a new session, whose epoch bump
	// aborts the transaction, before anything is read again.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	aerr := t.kafka.Abort(actx)
	cancel()
	if aerr != nil {
		t.log.Warn("abort after a failed batch", "err", aerr)
		return connector.NewCommitError(connector.CommitUnknown, "abort after a failed batch", errors.Join(cause, aerr))
	}
	return cause
}

// phaseTwo is a decided batch's COMMIT PREPAREDs, in flight on a goroutine
// of their own. The gids are decided, so committing them is right whoever
// does it and however often (a gid already committed is success, see
// Participant): after a failed attempt the goroutine tries again, so a
// decided batch does not stay invisible on an idle connector, until
// Recover or Close takes over (stop) and resolves it from the decisions.
type phaseTwo struct {
	attempted chan struct{} // closed once the first attempt answered, err set
	err       error
	stop      chan struct{} // closed to end the retries
	exited    chan struct{}
	cancel    context.CancelFunc // abandons an attempt in flight (Close)
}

// phaseTwoTimeout bounds one attempt at a batch's COMMIT PREPAREDs: each
// is one WAL flush, and a server that does not answer within it is left to
// the next attempt or to recovery.
const phaseTwoTimeout = 30 * time.Second

// phaseTwoRetry is the first pause between attempts, doubled up to
// phaseTwoRetryMax.
const (
	phaseTwoRetry    = 500 * time.Millisecond
	phaseTwoRetryMax = 10 * time.Second
)

// startPhaseTwo commits gids (one per participant) on a goroutine. Its
// context outlives ctx, the batch's: the batch is decided, and a
// cancelled batch context must not leave it half visible.
func (t *TwoPhase) startPhaseTwo(ctx context.Context, gids []string) *phaseTwo {
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &phaseTwo{attempted: make(chan struct{}), stop: make(chan struct{}), exited: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(p.exited)
		defer cancel()
		err := t.commitPrepared(base, gids)
		p.err = err
		close(p.attempted)
		for pause := phaseTwoRetry; err != nil; pause = min(2*pause, phaseTwoRetryMax) {
			select {
			case <-p.stop:
				return
			case <-time.After(pause):
			}
			if err = t.commitPrepared(base, gids); err != nil {
				t.log.Warn("phase two failed again; retrying", "gids", gids, "err", err)
			} else {
				t.log.Info("phase two committed a decided batch on a later attempt", "gids", gids)
			}
		}
	}()
	return p
}

// commitPrepared is one attempt at phase two: COMMIT PREPARED of each gid.
func (t *TwoPhase) commitPrepared(base context.Context, gids []string) error {
	ctx, cancel := context.WithTimeout(base, phaseTwoTimeout)
	defer cancel()
	for i, p := range t.parts {
		if err := p.CommitPrepared(ctx, gids[i]); err != nil {
			return participantError(p, "commit prepared (the batch is decided; recovery commits it)", err)
		}
	}
	return nil
}

// awaitPhaseTwo waits for the first attempt of the pending phase two and
// returns its error. The retries it may go on with are left running:
// Recover stops them before it resolves.
func (t *TwoPhase) awaitPhaseTwo(ctx context.Context) error {
	p := t.pending
	if p == nil {
		return nil
	}
	select {
	case <-p.attempted:
	case <-ctx.Done():
		return connector.NewCommitError(connector.Abortable, "wait for the previous batch's phase two", ctx.Err())
	}
	if p.err != nil {
		return p.err
	}
	t.pending = nil
	return nil
}

// stopPhaseTwo ends the pending phase two's retries and waits for its
// goroutine (an attempt in flight is bounded by phaseTwoTimeout), so that
// nothing else commits the gids while the caller resolves them.
func (t *TwoPhase) stopPhaseTwo() {
	p := t.pending
	if p == nil {
		return
	}
	close(p.stop)
	<-p.exited
	t.pending = nil
}

// participantError classifies a participant's error: a CommitError it
// returned keeps its kind (Fatal for a bad record), anything else is
// Abortable.
func participantError(p Participant, op string, err error) error {
	var ce *connector.CommitError
	if errors.As(err, &ce) {
		return err
	}
	return connector.NewCommitError(connector.Abortable, op+" "+p.Name(), err)
}

// rollbackAll rolls back gids, one per participant in order, best effort.
func (t *TwoPhase) rollbackAll(ctx context.Context, gids []string) {
	for i, gid := range gids {
		if err := t.parts[i].RollbackPrepared(ctx, gid); err != nil {
			t.log.Warn("rollback prepared failed; recovery rolls it back", "participant", t.parts[i].Name(), "gid", gid, "err", err)
		}
	}
}

// Abort aborts the Kafka transaction and drops the kept records. Nothing
// is prepared outside Commit, so there is nothing else to undo.
func (t *TwoPhase) Abort(ctx context.Context) error {
	t.buf = t.buf[:0]
	return t.kafka.Abort(ctx)
}

// Recover re-establishes the Kafka session (a new one after fencing or an
// unknown outcome, whose epoch bump ends the old transaction; an aborted
// batch keeps the session: its transaction is known to be aborted), checks
// the participants once, then resolves every in-doubt transaction. Like
// KafkaGroupTxn's, it returns no checkpoint: the consumer group's committed
// offsets are where its session resumes.
func (t *TwoPhase) Recover(ctx context.Context, cause error) (connector.Checkpoint, error) {
	if _, err := t.kafka.Recover(ctx, cause); err != nil {
		return nil, err
	}
	if !t.checked {
		if err := t.decisions.Ensure(ctx); err != nil {
			return nil, connector.NewCommitError(connector.Abortable, "offsets topic", err)
		}
		for _, p := range t.parts {
			if err := p.Check(ctx); err != nil {
				return nil, participantError(p, "check", err)
			}
		}
		t.checked = true
	}
	t.afterAssign.Store(false) // resolving now covers the assignment
	return nil, t.resolve(ctx)
}

// resolve lists, fences, reads the decisions and resolves; see TwoPhase.
func (t *TwoPhase) resolve(ctx context.Context) error {
	// A phase two still running could commit a gid while it is listed
	// and resolved here; its own gids are decided, so whatever it left
	// is committed below.
	t.stopPhaseTwo()
	type inDoubt struct {
		part Participant
		gid  string
	}
	var found []inDoubt
	owners := map[string]bool{} // other instances whose transactions we resolve
	var live map[string]bool    // client IDs of the group's members, read once
	for _, p := range t.parts {
		gids, err := p.Prepared(ctx, GIDPrefix(t.connector))
		if err != nil {
			return participantError(p, "list prepared transactions", err)
		}
		for _, gid := range gids {
			g, err := ParseGID(gid)
			if err != nil {
				t.log.Warn("a prepared transaction with our prefix has a malformed gid; leaving it", "gid", gid, "err", err)
				continue
			}
			if g.Instance != t.instance {
				if live == nil {
					if live, err = t.members(ctx); err != nil {
						return connector.NewCommitError(connector.Abortable, "describe group", err)
					}
				}
				if live[t.transactionalID(g.Instance)] {
					continue // a live member's own: it resolves them
				}
				owners[g.Instance] = true
			}
			found = append(found, inDoubt{p, gid})
		}
	}
	t.mu.Lock()
	t.stats.InDoubt, t.stats.LastRecovery = int64(len(found)), time.Now()
	t.mu.Unlock()
	if len(found) == 0 {
		return nil
	}
	// Our own older transactions need no fencing: our session's
	// InitProducerID ended them. Every other owner's must end before the
	// decisions are read.
	for owner := range owners {
		if err := t.fence(ctx, t.transactionalID(owner)); err != nil {
			return connector.NewCommitError(connector.Abortable, "fence "+owner, err)
		}
	}
	reach("during-recovery")
	committed, err := t.decisions.LoadDecisions(ctx)
	if err != nil {
		return connector.NewCommitError(connector.Abortable, "read decisions", err)
	}
	for _, d := range found {
		if committed[d.gid] {
			err = d.part.CommitPrepared(ctx, d.gid)
		} else {
			err = d.part.RollbackPrepared(ctx, d.gid)
		}
		if err != nil {
			return participantError(d.part, "resolve "+d.gid, err)
		}
		t.log.Info("resolved an in-doubt transaction", "participant", d.part.Name(), "gid", d.gid, "committed", committed[d.gid])
		t.mu.Lock()
		t.stats.InDoubt--
		if committed[d.gid] {
			t.stats.ResolvedCommitted++
		} else {
			t.stats.ResolvedRolledBack++
		}
		t.mu.Unlock()
	}
	return nil
}

// members returns the client IDs of the consumer group's members.
func (t *TwoPhase) members(ctx context.Context) (map[string]bool, error) {
	cl := t.kafka.Client()
	if cl == nil {
		return nil, errors.New("no session")
	}
	groups, err := kadm.NewClient(cl).DescribeGroups(ctx, t.group)
	if err == nil {
		err = groups.Error()
	}
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, g := range groups {
		for _, m := range g.Members {
			ids[m.ClientID] = true
		}
	}
	return ids, nil
}

// fence bumps the epoch of transactionalID: the coordinator completes or
// aborts its open transaction before answering, and its owner can no
// longer commit with the old epoch.
func (t *TwoPhase) fence(ctx context.Context, transactionalID string) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), t.fenceOpts...), kgo.TransactionalID(transactionalID))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	_, _, err = cl.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("init producer id of %s: %w", transactionalID, err)
	}
	t.log.Info("fenced another instance's transactional ID before resolving its prepared transactions", "transactional_id", transactionalID)
	return nil
}

// phaseTwoCloseGrace is how long Close waits for the last batch's phase
// two (normally one WAL flush) before it abandons it to recovery.
const phaseTwoCloseGrace = 5 * time.Second

// Close waits for the last batch's phase two (its first attempt, at most
// phaseTwoCloseGrace), then closes the Kafka session and the participants.
// A batch prepared and not decided stays prepared until the next recovery,
// by this or any other instance, rolls it back; a decided one whose phase
// two failed or was abandoned, until the next recovery commits it.
func (t *TwoPhase) Close() {
	if p := t.pending; p != nil {
		select {
		case <-p.attempted:
		case <-time.After(phaseTwoCloseGrace):
			p.cancel() // its outcome is unknown: recovery lists the gids
			<-p.attempted
		}
		if p.err != nil {
			t.log.Warn("the last batch's phase two did not finish; it stays prepared until the next recovery commits it", "err", p.err)
		}
		t.stopPhaseTwo()
	}
	t.kafka.Close()
	for _, p := range t.parts {
		p.Close()
	}
}
