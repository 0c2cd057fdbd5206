package txn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

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

// An offset commit's outcome names every partition the broker refused, so
// the lag commit's log (which has no other trace) says which and why; a
// request error wins, and a clean response is no error.
func TestOffsetCommitErr(t *testing.T) {
	resp := kmsg.NewPtrOffsetCommitResponse()
	for _, tp := range []struct {
		topic string
		part  int32
		code  int16
	}{{"in", 0, 0}, {"in", 1, kerr.FencedInstanceID.Code}, {"other", 2, kerr.UnknownMemberID.Code}} {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = tp.topic
		rp := kmsg.NewOffsetCommitResponseTopicPartition()
		rp.Partition, rp.ErrorCode = tp.part, tp.code
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
	}
	err := offsetCommitErr(resp, nil)
	if !errors.Is(err, kerr.FencedInstanceID) || !errors.Is(err, kerr.UnknownMemberID) {
		t.Fatalf("offsetCommitErr = %v, want both partitions' errors", err)
	}
	for _, want := range []string{"in/1: FENCED_INSTANCE_ID", "other/2: UNKNOWN_MEMBER_ID"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("offsetCommitErr = %q, does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "in/0") {
		t.Errorf("offsetCommitErr = %q names the partition that was committed", err)
	}
	reqErr := errors.New("connection reset")
	if got := offsetCommitErr(resp, reqErr); got != reqErr {
		t.Errorf("with a request error: %v, want it as it is", got)
	}
	if got := offsetCommitErr(kmsg.NewPtrOffsetCommitResponse(), nil); got != nil {
		t.Errorf("a clean response: %v, want nil", got)
	}
}
