package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/connector"
)

// The admin API's transactions routes are served by API, through Daemon.
var _ admin.Transactions = (*API)(nil)

// openStates are the coordinator's states of a transaction that has begun
// and not completed: the partitions it wrote to hold read_committed
// consumers (their last stable offset) until it ends.
var openStates = []string{"Ongoing", "PrepareCommit", "PrepareAbort", "PrepareEpochFence"}

// Transactions implements admin.Transactions: the coordinator's view of
// every connector's transactional ID, and every open transaction on the
// cluster (ListTransactions, then DescribeTransactions for the start time,
// timeout and partitions).
func (d *Daemon) Transactions(ctx context.Context, olderThan time.Duration) (admin.TransactionsReport, error) {
	var rep admin.TransactionsReport
	owned := d.transactionalIDs()
	adm, done, err := d.kafkaAdmin()
	if err != nil {
		return rep, err
	}
	defer done()

	listed, err := adm.ListTransactions(ctx, nil, openStates)
	var shardErrs *kadm.ShardErrors
	switch {
	case errors.As(err, &shardErrs):
		// Some brokers answered: report what they said, and which did not.
		for _, e := range shardErrs.Errs {
			rep.Errors = append(rep.Errors, fmt.Sprintf("listing transactions on broker %d: %v", e.Broker.NodeID, e.Err))
		}
	case err != nil:
		return rep, fmt.Errorf("listing transactions: %w", err)
	}
	ids := listed.TransactionalIDs()
	for _, o := range owned {
		if !slices.Contains(ids, o.id) {
			ids = append(ids, o.id)
		}
	}
	described := kadm.DescribedTransactions{}
	if len(ids) > 0 {
		described, err = adm.DescribeTransactions(ctx, ids...)
		switch {
		case errors.As(err, &shardErrs):
			for _, e := range shardErrs.Errs {
				rep.Errors = append(rep.Errors, fmt.Sprintf("describing transactions on broker %d: %v", e.Broker.NodeID, e.Err))
			}
		case err != nil:
			return rep, fmt.Errorf("describing transactions: %w", err)
		}
	}

	now := time.Now()
	byID := map[string]ownedID{}
	for _, o := range owned {
		byID[o.id] = o
		t := admin.Transaction{TransactionalID: o.id, Partitions: []admin.TxnPartition{}}
		if dt, ok := described[o.id]; ok {
			t = transaction(dt, now, olderThan)
		}
		t.Connector, t.ConnectorState = o.connector, string(o.state)
		rep.Connectors = append(rep.Connectors, t)
	}
	for _, dt := range described.Sorted() {
		_, wasListed := listed[dt.TxnID]
		t := transaction(dt, now, olderThan)
		if !t.Open && (!wasListed || t.Error == "") {
			// One of ours with no open transaction, or one that
			// completed between the list and the describe.
			continue
		}
		if o, ok := byID[dt.TxnID]; ok {
			t.Connector, t.ConnectorState = o.connector, string(o.state)
		}
		rep.Cluster = append(rep.Cluster, t)
		if t.Hanging {
			rep.Hanging = append(rep.Hanging, t.TransactionalID)
		}
	}
	return rep, nil
}

// AbortTransaction implements admin.Transactions: it fences the
// transactional ID, which makes its coordinator abort the ongoing
// transaction.
//
// The fence is an InitProducerID with that transactional ID, sent by a
// throwaway transactional client (kgo's ProducerID): the coordinator bumps
// the producer epoch, aborts the open transaction (writing abort markers to
// every partition in it, so their last stable offset moves past it), and
// from then on rejects the old producer (PRODUCER_FENCED) if it is still
// alive. This is what a restarted Kafka producer does to its predecessor's
// transaction, so the coordinator's state and the partitions' agree.
//
// Writing abort markers directly (WriteTxnMarkers, as kafka-transactions.sh
// abort does for KIP-664) is not used: it is meant for partitions whose
// coordinator has forgotten the transaction. Tried on Kafka 4.1.1 against a
// transaction the coordinator still tracks, it moved the partition's last
// stable offset but left the coordinator's state Ongoing, and the old
// producer's commit then succeeded: a commit reported for records that had
// been aborted, which is data loss under exactly-once.
//
// A transactional ID of a connector of this daemon that is running (or
// paused, or starting) is refused unless force is set: its transaction is
// open because a batch is in flight, not because it hangs, and fencing it
// makes the connector's next commit fail as fenced, so the connector throws
// the batch away, rejoins and re-reads it (still exactly once, but work
// lost, and a connector that looks fenced by a newer owner). Stopping or
// restarting the connector is the clean way; force is for a connector
// stuck in a transaction that will not end. A STOPPED, FAILED or FINISHED
// connector's ID has no live producer, so no force is needed.
func (d *Daemon) AbortTransaction(ctx context.Context, id string, force bool) (admin.Transaction, error) {
	// The owner is checked first, without asking Kafka: whether its
	// transaction happens to be open at this moment does not change the
	// answer.
	o, mine := d.ownerOf(id)
	if mine && !force && o.state != connector.Stopped && o.state != connector.Failed && o.state != connector.Finished {
		return admin.Transaction{}, fmt.Errorf("%w: transactional ID %s belongs to connector %s, which is %s and commits or aborts its open batch itself; "+
			"stop it (PUT /connectors/%s/stop), or add ?force=true to fence it (the connector then re-reads the batch)",
			admin.ErrTransactionOwned, id, o.connector, o.state, o.connector)
	}
	adm, done, err := d.kafkaAdmin()
	if err != nil {
		return admin.Transaction{}, err
	}
	defer done()
	before, err := describeTransaction(ctx, adm, id)
	if err != nil {
		return admin.Transaction{}, err
	}
	if before.State != "Ongoing" {
		return admin.Transaction{}, fmt.Errorf("%w: transactional ID %s is %s; only an Ongoing transaction can be aborted (Prepare* states are being completed by the coordinator)",
			admin.ErrTransactionNotOpen, id, before.State)
	}

	opts := append(d.clientOpts("", "abort"), kgo.SeedBrokers(d.Brokers()...), kgo.TransactionalID(id))
	if before.TimeoutMillis > 0 {
		// InitProducerID stores the timeout it carries; keep the
		// owner's rather than replacing it with kgo's default.
		opts = append(opts, kgo.TransactionTimeout(time.Duration(before.TimeoutMillis)*time.Millisecond))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return admin.Transaction{}, err
	}
	defer cl.Close()
	// kgo retries the coordinator's CONCURRENT_TRANSACTIONS while it
	// aborts, so this returns once the transaction has ended.
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		return admin.Transaction{}, fmt.Errorf("fencing transactional ID %s: %w", id, err)
	}
	d.log.Warn("aborted a transaction by fencing its transactional ID", "transactional_id", id,
		"producer_id", before.ProducerID, "old_epoch", before.ProducerEpoch, "new_epoch", epoch,
		"started", time.UnixMilli(before.StartTimestamp), "connector", o.connector, "forced", force)
	after, err := describeTransaction(ctx, adm, id)
	if err != nil {
		// The abort happened; say so with what the fence returned.
		after = before
		after.State, after.ProducerID, after.ProducerEpoch, after.Topics = "", pid, epoch, nil
	}
	t := transaction(after, time.Now(), -1)
	if mine {
		st, _ := d.Status(o.connector)
		t.Connector, t.ConnectorState = o.connector, string(st.State)
	}
	return t, nil
}

// describeTransaction describes one transactional ID;
// admin.ErrTransactionNotFound if its coordinator does not know it.
func describeTransaction(ctx context.Context, adm *kadm.Client, id string) (kadm.DescribedTransaction, error) {
	described, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		return kadm.DescribedTransaction{}, fmt.Errorf("describing transactional ID %s: %w", id, err)
	}
	dt, ok := described[id]
	switch {
	case !ok:
		return dt, fmt.Errorf("describing transactional ID %s: no answer", id)
	case errors.Is(dt.Err, kerr.TransactionalIDNotFound):
		return dt, fmt.Errorf("%w: %s", admin.ErrTransactionNotFound, id)
	case dt.Err != nil:
		return dt, fmt.Errorf("describing transactional ID %s: %w", id, dt.Err)
	}
	return dt, nil
}

// transaction is the admin API's view of a described transaction at now;
// see admin.Transactions for olderThan.
func transaction(dt kadm.DescribedTransaction, now time.Time, olderThan time.Duration) admin.Transaction {
	t := admin.Transaction{
		TransactionalID: dt.TxnID,
		State:           dt.State,
		Open:            slices.Contains(openStates, dt.State),
		TimeoutMS:       dt.TimeoutMillis,
		ProducerID:      dt.ProducerID,
		ProducerEpoch:   dt.ProducerEpoch,
		Coordinator:     dt.Coordinator,
		Partitions:      []admin.TxnPartition{},
	}
	if dt.Err != nil {
		if errors.Is(dt.Err, kerr.TransactionalIDNotFound) {
			return admin.Transaction{TransactionalID: dt.TxnID, Partitions: []admin.TxnPartition{}}
		}
		t.Error = dt.Err.Error()
	}
	for _, tp := range dt.Topics.Sorted() {
		for _, p := range tp.Partitions {
			t.Partitions = append(t.Partitions, admin.TxnPartition{Topic: tp.Topic, Partition: p})
		}
	}
	if t.Open && dt.StartTimestamp >= 0 {
		since := time.UnixMilli(dt.StartTimestamp).UTC()
		// The coordinator's clock may run ahead of ours.
		age := max(now.Sub(since), 0)
		t.Since, t.AgeMS = &since, age.Milliseconds()
		timeout := time.Duration(dt.TimeoutMillis) * time.Millisecond
		t.Hanging = (timeout > 0 && age > timeout) || (olderThan >= 0 && age >= olderThan)
	}
	return t
}

// ownedID is a connector's transactional ID and the connector's state.
type ownedID struct {
	connector string
	id        string
	state     connector.State
}

// transactionalIDs are those of the connectors committing through Kafka
// transactions (one per task), by connector name.
func (d *Daemon) transactionalIDs() []ownedID {
	var out []ownedID
	for _, name := range d.Names() {
		d.mu.Lock()
		e, ok := d.entries[name]
		var ids []string
		if ok {
			ids = e.spec.KafkaTransactionalIDs(d.env)
		}
		d.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		st, ok := d.Status(name)
		if !ok {
			continue // deleted meanwhile
		}
		for _, id := range ids {
			out = append(out, ownedID{connector: name, id: id, state: st.State})
		}
	}
	return out
}

func (d *Daemon) ownerOf(id string) (ownedID, bool) {
	for _, o := range d.transactionalIDs() {
		if o.id == id {
			return o, true
		}
	}
	return ownedID{}, false
}

// kafkaAdmin is an admin client for one request, with the daemon's client
// options and metrics (client="admin").
func (d *Daemon) kafkaAdmin() (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(append(d.clientOpts("", "admin"), kgo.SeedBrokers(d.Brokers()...))...)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}
