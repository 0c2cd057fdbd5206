package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/connectd/connectd/admin"
)

// fakeTxns is an admin.Transactions with one hanging transaction on the
// cluster, "stuck", and the transactional ID of a running connector,
// "connectd-copy-x".
type fakeTxns struct {
	olderThan time.Duration // as last asked
	aborted   []string
	forced    bool
	listErr   error
}

func (f *fakeTxns) Transactions(_ context.Context, olderThan time.Duration) (admin.TransactionsReport, error) {
	f.olderThan = olderThan
	if f.listErr != nil {
		return admin.TransactionsReport{}, f.listErr
	}
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return admin.TransactionsReport{
		Connectors: []admin.Transaction{{TransactionalID: "connectd-copy-x", Connector: "copy", ConnectorState: "RUNNING",
			State: "Empty", ProducerID: 7, ProducerEpoch: 3, Coordinator: 1, Partitions: []admin.TxnPartition{}}},
		Cluster: []admin.Transaction{{TransactionalID: "stuck", State: "Ongoing", Open: true, Hanging: true,
			Since: &since, AgeMS: 90000, TimeoutMS: 60000, ProducerID: 9, ProducerEpoch: 0, Coordinator: 1,
			Partitions: []admin.TxnPartition{{Topic: "out", Partition: 2}}}},
		Hanging: []string{"stuck"},
	}, nil
}

func (f *fakeTxns) AbortTransaction(_ context.Context, id string, force bool) (admin.Transaction, error) {
	switch id {
	case "stuck", "a/b":
		f.aborted, f.forced = append(f.aborted, id), force
		return admin.Transaction{TransactionalID: id, State: "Empty", ProducerID: 9, ProducerEpoch: 1, Coordinator: 1,
			Partitions: []admin.TxnPartition{}}, nil
	case "connectd-copy-x":
		if !force {
			return admin.Transaction{}, fmt.Errorf("%w: transactional ID %s belongs to connector copy", admin.ErrTransactionOwned, id)
		}
		f.aborted, f.forced = append(f.aborted, id), force
		return admin.Transaction{TransactionalID: id, Connector: "copy", ConnectorState: "RUNNING", State: "Empty",
			Partitions: []admin.TxnPartition{}}, nil
	case "done":
		return admin.Transaction{}, fmt.Errorf("%w: transactional ID done is CompleteCommit", admin.ErrTransactionNotOpen)
	case "broken":
		return admin.Transaction{}, errors.New("describing transactional ID broken: COORDINATOR_NOT_AVAILABLE")
	}
	return admin.Transaction{}, fmt.Errorf("%w: %s", admin.ErrTransactionNotFound, id)
}

func TestListTransactions(t *testing.T) {
	txns := &fakeTxns{}
	h := admin.New(newFake(), nil, admin.WithTransactions(txns)).Handler()
	expect(t, do(t, h, "GET", "/transactions", ""), 200, `{
		"connectors": [{"transactional_id": "connectd-copy-x", "connector": "copy", "connector_state": "RUNNING",
			"state": "Empty", "open": false, "hanging": false, "producer_id": 7, "producer_epoch": 3, "coordinator": 1, "partitions": []}],
		"cluster": [{"transactional_id": "stuck", "state": "Ongoing", "open": true, "hanging": true,
			"since": "2026-01-02T03:04:05Z", "age_ms": 90000, "timeout_ms": 60000, "producer_id": 9, "producer_epoch": 0,
			"coordinator": 1, "partitions": [{"topic": "out", "partition": 2}]}],
		"hanging": ["stuck"]}`)
	if txns.olderThan >= 0 {
		t.Errorf("without older_than_ms the threshold is %v, want negative (not given)", txns.olderThan)
	}

	rec := do(t, h, "GET", "/transactions?older_than_ms=0", "")
	expect(t, rec, 200, "")
	var rep admin.TransactionsReport
	decode(t, rec.Body.Bytes(), &rep)
	if txns.olderThan != 0 || rep.HangingAfterMS == nil || *rep.HangingAfterMS != 0 {
		t.Errorf("older_than_ms=0: threshold %v, hanging_after_ms %v", txns.olderThan, rep.HangingAfterMS)
	}
	do(t, h, "GET", "/transactions?older_than_ms=1500", "")
	if txns.olderThan != 1500*time.Millisecond {
		t.Errorf("older_than_ms=1500: threshold %v", txns.olderThan)
	}
	for _, bad := range []string{"-1", "1.5", "1s", "x", "99999999999999999999"} {
		expect(t, do(t, h, "GET", "/transactions?older_than_ms="+bad, ""), 400,
			`{"error_code":400,"message":"query parameter older_than_ms must be a number of milliseconds, 0 or more"}`)
	}

	txns.listErr = errors.New("listing transactions: dial tcp 127.0.0.1:1: connect: connection refused")
	expect(t, do(t, h, "GET", "/transactions", ""), 500,
		`{"error_code":500,"message":"listing transactions: dial tcp 127.0.0.1:1: connect: connection refused"}`)
}

func TestAbortTransaction(t *testing.T) {
	txns := &fakeTxns{}
	h := admin.New(newFake(), nil, admin.WithTransactions(txns)).Handler()
	expect(t, do(t, h, "POST", "/transactions/stuck/abort", ""), 200,
		`{"transactional_id": "stuck", "state": "Empty", "open": false, "hanging": false, "producer_id": 9, "producer_epoch": 1, "coordinator": 1, "partitions": []}`)
	// A transactional ID may hold any character; percent-encoded, a
	// slash stays in the one path segment.
	expect(t, do(t, h, "POST", "/transactions/a%2Fb/abort", ""), 200, "")
	if want := []string{"stuck", "a/b"}; fmt.Sprint(txns.aborted) != fmt.Sprint(want) || txns.forced {
		t.Fatalf("aborted %v (forced %v), want %v unforced", txns.aborted, txns.forced, want)
	}

	expect(t, do(t, h, "POST", "/transactions/nope/abort", ""), 404,
		`{"error_code":404,"message":"transactional ID not found: nope"}`)
	expect(t, do(t, h, "POST", "/transactions/done/abort", ""), 409,
		`{"error_code":409,"message":"no ongoing transaction: transactional ID done is CompleteCommit"}`)
	expect(t, do(t, h, "POST", "/transactions/connectd-copy-x/abort", ""), 409,
		`{"error_code":409,"message":"transaction of a running connector: transactional ID connectd-copy-x belongs to connector copy"}`)
	expect(t, do(t, h, "POST", "/transactions/connectd-copy-x/abort?force=false", ""), 409, "")
	expect(t, do(t, h, "POST", "/transactions/connectd-copy-x/abort?force=yes", ""), 400,
		`{"error_code":400,"message":"query parameter force must be true or false"}`)
	expect(t, do(t, h, "POST", "/transactions/broken/abort", ""), 500,
		`{"error_code":500,"message":"describing transactional ID broken: COORDINATOR_NOT_AVAILABLE"}`)
	if len(txns.aborted) != 2 {
		t.Fatalf("a refused request aborted: %v", txns.aborted)
	}
	expect(t, do(t, h, "POST", "/transactions/connectd-copy-x/abort?force=true", ""), 200, "")
	if !txns.forced {
		t.Fatal("force=true did not reach AbortTransaction")
	}

	expect(t, do(t, h, "GET", "/transactions/stuck/abort", ""), 405, `{"error_code":405,"message":"HTTP 405 Method Not Allowed"}`)
	expect(t, do(t, h, "DELETE", "/transactions", ""), 405, "")
}

func TestTransactionsNeedToken(t *testing.T) {
	txns := &fakeTxns{}
	h := admin.New(newFake(), nil, admin.WithToken("s3cret"), admin.WithTransactions(txns)).Handler()
	unauthorized := `{"error_code":401,"message":"HTTP 401 Unauthorized: a valid bearer token is required"}`
	expect(t, do(t, h, "GET", "/transactions", ""), 401, unauthorized)
	expect(t, do(t, h, "POST", "/transactions/stuck/abort", ""), 401, unauthorized)
	expect(t, do(t, h, "POST", "/transactions/stuck/abort", "", "Authorization", "Bearer nope"), 401, unauthorized)
	if len(txns.aborted) != 0 {
		t.Fatal("an unauthenticated abort aborted")
	}
	expect(t, do(t, h, "GET", "/transactions", "", "Authorization", "Bearer s3cret"), 200, "")
	expect(t, do(t, h, "POST", "/transactions/stuck/abort", "", "Authorization", "Bearer s3cret"), 200, "")
}

func TestTransactionsNotConfigured(t *testing.T) {
	h := admin.New(newFake(), nil).Handler()
	want := `{"error_code":404,"message":"transactions are not available on this server"}`
	expect(t, do(t, h, "GET", "/transactions", ""), http.StatusNotFound, want)
	expect(t, do(t, h, "POST", "/transactions/stuck/abort", ""), http.StatusNotFound, want)
}
