// Package txn holds connectd's commit protocols: how one batch and the
// input checkpoint after it become durable, transactionally or not. Each
// protocol implements connector.Protocol and states what is atomic, what
// happens on abort, on fencing, and when the outcome of a commit is
// unknown. A protocol is named for where its checkpoint lives:
//
//   - KafkaGroupTxn: Kafka → Kafka exactly-once; one franz-go client
//     consumes and produces, and the consumed offsets commit inside the
//     producer transaction (KIP-447).
//   - OffsetsTopicTxn: a source that is not a consumer group → Kafka
//     exactly-once; the checkpoint is a record in a compacted offsets
//     topic (OffsetsTopic), written in the same transaction.
//   - SinkOffsets: Kafka → a sink store exactly-once; the checkpoint is
//     kept by the sink (a table, a hash, a manifest) and commits with the
//     output in the store's own transaction, claimed and fenced by epochs.
//   - TwoPhase: Kafka → several sinks exactly-once; the participants
//     prepare, and the Kafka transaction with the group's offsets and a
//     decision record is the commit point.
//   - KafkaAtLeastOnce, SinkAtLeastOnce: write, wait for acknowledgement,
//     then store the checkpoint (the group's offsets, or the offsets
//     topic). Duplicates appear after failures; nothing is lost.
package txn

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// classifyKafka maps a franz-go transaction error to a commit-error kind.
//
// ProducerFenced, InvalidProducerEpoch and a transactional-ID authorization
// failure mean another producer with our transactional ID (a newer instance
// of us) owns the work: Fenced. Errors franz-go documents as aborting the
// transaction (TransactionAbortable, a rebalance) are Abortable. Anything else
// leaves the outcome unknown: the protocol must re-create its producer (the
// epoch bump aborts whatever is open) and re-read the checkpoint.
func classifyKafka(op string, err error) error {
	if err == nil {
		return nil
	}
	var classified *connector.CommitError
	switch {
	case errors.As(err, &classified):
		return err
	case errors.Is(err, kerr.InvalidTransactionTimeout):
		return connector.NewCommitError(connector.Fatal, op, fmt.Errorf(
			"transaction.timeout is above the broker's transaction.max.timeout.ms; lower it or raise the broker's limit: %w", err))
	case isFenced(err):
		return connector.NewCommitError(connector.Fenced, op, err)
	case errors.Is(err, kerr.TransactionAbortable),
		errors.Is(err, kerr.IllegalGeneration),
		errors.Is(err, kerr.RebalanceInProgress),
		errors.Is(err, kerr.UnknownMemberID):
		return connector.NewCommitError(connector.Abortable, op, err)
	}
	return connector.NewCommitError(connector.CommitUnknown, op, err)
}

func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) ||
		errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// bumpEpoch loads a new transactional client's producer ID, which bumps
// the epoch of its transactional ID: a transaction a previous client with
// that ID left open is ended on the broker (completed if its EndTxn was
// already written, aborted otherwise) before the caller reads its
// checkpoint, and a zombie still holding the old epoch is fenced at once.
// Every protocol that replaces its producer calls it first.
func bumpEpoch(ctx context.Context, cl *kgo.Client) error {
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return classifyKafka("init producer id", err)
	}
	return nil
}

// needsNewSession reports whether a failure leaves a producer session that
// must be replaced before the next batch: after fencing the client is in a
// fatal state, and after an unknown outcome only a new epoch guarantees that
// the maybe-open transaction is aborted before we re-read.
func needsNewSession(cause error) bool {
	if cause == nil {
		return false
	}
	k := connector.KindOf(cause)
	return k == connector.Fenced || k == connector.CommitUnknown
}
