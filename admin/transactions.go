package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Transactions is the Kafka transactions view behind GET /transactions and
// POST /transactions/{transactional_id}/abort; daemon.Daemon.API()
// implements it. Implementations report the conditions the API maps to
// status codes with ErrTransactionNotFound, ErrTransactionNotOpen and
// ErrTransactionOwned, wrapped or not; their messages reach the client.
type Transactions interface {
	// Transactions lists the transactional IDs of this daemon's
	// connectors with the coordinator's view of each, and every open
	// transaction on the cluster. An open transaction is hanging when it
	// has been open longer than its own timeout, or, when olderThan is
	// not negative, for olderThan or longer.
	Transactions(ctx context.Context, olderThan time.Duration) (TransactionsReport, error)
	// AbortTransaction aborts the ongoing transaction of a transactional
	// ID by fencing it, and returns the coordinator's view afterwards.
	// A transactional ID of one of this daemon's connectors that is not
	// STOPPED or FAILED is refused with ErrTransactionOwned unless force
	// is set.
	AbortTransaction(ctx context.Context, transactionalID string, force bool) (Transaction, error)
}

// Errors a Transactions implementation returns.
var (
	// ErrTransactionNotFound: the cluster does not know the transactional
	// ID (404).
	ErrTransactionNotFound = errors.New("transactional ID not found")
	// ErrTransactionNotOpen: the transactional ID has no ongoing
	// transaction to abort (409).
	ErrTransactionNotOpen = errors.New("no ongoing transaction")
	// ErrTransactionOwned: the transactional ID is a running connector's
	// of this daemon, and force was not given (409).
	ErrTransactionOwned = errors.New("transaction of a running connector")
)

// TransactionsReport is GET /transactions' body.
type TransactionsReport struct {
	// Connectors has one entry per connector of this daemon that commits
	// through Kafka transactions, by name, whether or not a transaction
	// is open.
	Connectors []Transaction `json:"connectors"`
	// Cluster has every open transaction on the cluster (this daemon's
	// included), by transactional ID.
	Cluster []Transaction `json:"cluster"`
	// Hanging are the transactional IDs of Cluster's hanging
	// transactions.
	Hanging []string `json:"hanging"`
	// HangingAfterMS is older_than_ms as applied, when given.
	HangingAfterMS *int64 `json:"hanging_after_ms,omitempty"`
	// Errors are brokers or transactional IDs that could not be listed
	// or described; the lists above then miss what they would have said.
	Errors []string `json:"errors,omitempty"`
}

// Transaction is a transactional ID as its transaction coordinator
// describes it (Kafka's DescribeTransactions).
type Transaction struct {
	TransactionalID string `json:"transactional_id"`
	// Connector and ConnectorState are set when the ID belongs to a
	// connector of this daemon.
	Connector      string `json:"connector,omitempty"`
	ConnectorState string `json:"connector_state,omitempty"`
	// State is the coordinator's: Empty, Ongoing, PrepareCommit,
	// PrepareAbort, CompleteCommit, CompleteAbort, Dead or
	// PrepareEpochFence; "" when the coordinator does not know the ID
	// (a connector that never began a transaction).
	State string `json:"state"`
	// Open: a transaction has begun and has not completed (Ongoing or
	// Prepare*): read_committed consumers of its partitions wait for it.
	Open bool `json:"open"`
	// Hanging: open longer than its timeout, or than older_than_ms.
	Hanging bool `json:"hanging"`
	// Since is when the open transaction began (the coordinator's clock),
	// and AgeMS how long ago that was.
	Since         *time.Time     `json:"since,omitempty"`
	AgeMS         int64          `json:"age_ms,omitempty"`
	TimeoutMS     int32          `json:"timeout_ms,omitempty"`
	ProducerID    int64          `json:"producer_id"`
	ProducerEpoch int16          `json:"producer_epoch"`
	Coordinator   int32          `json:"coordinator"`
	Partitions    []TxnPartition `json:"partitions"`
	// Error is why the ID could not be described, if it could not.
	Error string `json:"error,omitempty"`
}

// TxnPartition is a partition a transaction wrote to.
type TxnPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// WithTransactions serves GET /transactions and
// POST /transactions/{transactional_id}/abort from t (usually
// daemon.Daemon.API()). Default: both answer 404.
func WithTransactions(t Transactions) Option {
	return func(s *Server) { s.txns = t }
}

// kafkaRequestTimeout bounds the Kafka requests of one admin request, so an
// unreachable cluster gets an answer well before the server's write
// timeout.
const kafkaRequestTimeout = 20 * time.Second

// listTransactions is GET /transactions[?older_than_ms=N].
func (s *Server) listTransactions(w http.ResponseWriter, r *http.Request) {
	if s.txns == nil {
		writeError(w, http.StatusNotFound, "transactions are not available on this server")
		return
	}
	olderThan := time.Duration(-1)
	var applied *int64
	if v := r.URL.Query().Get("older_than_ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 || ms > int64(time.Duration(1<<63-1)/time.Millisecond) {
			s.fail(w, r, "", badRequest("query parameter older_than_ms must be a number of milliseconds, 0 or more"))
			return
		}
		olderThan, applied = time.Duration(ms)*time.Millisecond, &ms
	}
	ctx, cancel := context.WithTimeout(r.Context(), kafkaRequestTimeout)
	defer cancel()
	rep, err := s.txns.Transactions(ctx, olderThan)
	if err != nil {
		s.failTransaction(w, r, err)
		return
	}
	rep.HangingAfterMS = applied
	// [] rather than null, as the connector lists answer.
	if rep.Connectors == nil {
		rep.Connectors = []Transaction{}
	}
	if rep.Cluster == nil {
		rep.Cluster = []Transaction{}
	}
	if rep.Hanging == nil {
		rep.Hanging = []string{}
	}
	writeJSON(w, http.StatusOK, rep)
}

// abortTransaction is POST /transactions/{transactional_id}/abort[?force=true]:
// 200 with the transactional ID as described after the abort.
func (s *Server) abortTransaction(w http.ResponseWriter, r *http.Request) {
	if s.txns == nil {
		writeError(w, http.StatusNotFound, "transactions are not available on this server")
		return
	}
	id := r.PathValue("transactional_id")
	force, err := boolParam(r, "force")
	if err != nil {
		s.fail(w, r, "", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kafkaRequestTimeout)
	defer cancel()
	t, err := s.txns.AbortTransaction(ctx, id, force)
	if err != nil {
		s.failTransaction(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// failTransaction answers a failed transactions request: the sentinels'
// status codes with the implementation's message, else as fail does.
func (s *Server) failTransaction(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrTransactionNotFound):
		writeError(w, http.StatusNotFound, maskString(err.Error()))
	case errors.Is(err, ErrTransactionNotOpen), errors.Is(err, ErrTransactionOwned):
		writeError(w, http.StatusConflict, maskString(err.Error()))
	default:
		s.fail(w, r, "", err)
	}
}
