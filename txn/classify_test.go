package txn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/connectd/connectd/connector"
)

func TestClassifyKafka(t *testing.T) {
	already := connector.NewCommitError(connector.Abortable, "produce", errors.New("x"))
	tests := []struct {
		name string
		err  error
		want connector.CommitErrorKind
	}{
		{"producer fenced", kerr.ProducerFenced, connector.Fenced},
		{"invalid producer epoch", kerr.InvalidProducerEpoch, connector.Fenced},
		{"transactional ID authorization", kerr.TransactionalIDAuthorizationFailed, connector.Fenced},
		{"wrapped fenced", fmt.Errorf("end txn: %w", kerr.ProducerFenced), connector.Fenced},
		{"transaction abortable", kerr.TransactionAbortable, connector.Abortable},
		{"illegal generation", kerr.IllegalGeneration, connector.Abortable},
		{"rebalance in progress", kerr.RebalanceInProgress, connector.Abortable},
		{"unknown member ID", kerr.UnknownMemberID, connector.Abortable},
		{"invalid transaction timeout", kerr.InvalidTransactionTimeout, connector.Fatal},
		{"deadline exceeded", context.DeadlineExceeded, connector.CommitUnknown},
		{"request timed out", kerr.RequestTimedOut, connector.CommitUnknown},
		{"coordinator not available", kerr.CoordinatorNotAvailable, connector.CommitUnknown},
		{"arbitrary", errors.New("connection reset by peer"), connector.CommitUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classifyKafka("end transaction", tt.err)
			var ce *connector.CommitError
			if !errors.As(got, &ce) {
				t.Fatalf("classifyKafka(%v) = %v (%T), want a *connector.CommitError", tt.err, got, got)
			}
			if ce.Kind != tt.want {
				t.Errorf("kind %s, want %s", ce.Kind, tt.want)
			}
			if ce.Op != "end transaction" {
				t.Errorf("op %q, want end transaction", ce.Op)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("%v does not wrap %v", got, tt.err)
			}
		})
	}

	t.Run("already classified passes through", func(t *testing.T) {
		if got := classifyKafka("commit", already); got != already {
			t.Errorf("classifyKafka(%v) = %v, want it unchanged", already, got)
		}
		wrapped := fmt.Errorf("batch: %w", connector.NewCommitError(connector.Fenced, "produce", kerr.TransactionAbortable))
		if got := classifyKafka("commit", wrapped); got != wrapped || connector.KindOf(got) != connector.Fenced {
			t.Errorf("classifyKafka(%v) = %v, want it unchanged", wrapped, got)
		}
	})
	t.Run("nil", func(t *testing.T) {
		if got := classifyKafka("commit", nil); got != nil {
			t.Errorf("classifyKafka(nil) = %v", got)
		}
	})
	t.Run("fatal says what to do", func(t *testing.T) {
		got := classifyKafka("begin", kerr.InvalidTransactionTimeout)
		if msg := got.Error(); !strings.Contains(msg, "transaction.max.timeout.ms") {
			t.Errorf("message %q does not name the broker setting", msg)
		}
	})
}

func TestAsAbortable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want connector.CommitErrorKind
	}{
		{"fenced stays fenced", kerr.ProducerFenced, connector.Fenced},
		{"epoch stays fenced", fmt.Errorf("produce: %w", kerr.InvalidProducerEpoch), connector.Fenced},
		{"produce error is abortable", kerr.MessageTooLarge, connector.Abortable},
		{"unknown error is abortable: End already aborted", errors.New("x"), connector.Abortable},
	}
	for _, tt := range tests {
		if got := connector.KindOf(classifyKafka("produce", asAbortable(tt.err))); got != tt.want {
			t.Errorf("%s: kind %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestNeedsNewSession(t *testing.T) {
	tests := []struct {
		cause error
		want  bool
	}{
		{nil, false},
		{connector.NewCommitError(connector.Abortable, "x", errors.New("y")), false},
		{connector.NewCommitError(connector.Fatal, "x", errors.New("y")), false},
		{connector.NewCommitError(connector.Fenced, "x", errors.New("y")), true},
		{connector.NewCommitError(connector.CommitUnknown, "x", errors.New("y")), true},
		{fmt.Errorf("wrapped: %w", connector.NewCommitError(connector.Fenced, "x", errors.New("y"))), true},
		{errors.New("unclassified"), true}, // unknown outcome: a new epoch is needed
	}
	for _, tt := range tests {
		if got := needsNewSession(tt.cause); got != tt.want {
			t.Errorf("needsNewSession(%v) = %v, want %v", tt.cause, got, tt.want)
		}
	}
}
