package admin

import "errors"

// Errors a Connectors implementation returns (matched with errors.Is), each
// mapped to Kafka Connect's status code and message for the request.
var (
	// ErrNotFound: no connector of that name (404).
	ErrNotFound = errors.New("connector not found")
	// ErrExists: a connector of that name already exists (409).
	ErrExists = errors.New("connector already exists")
	// ErrNotStopped: offsets can only be read back reliably and changed
	// while the connector is STOPPED (KIP-875) (400).
	ErrNotStopped = errors.New("connector is not stopped")
	// ErrConflict: the request conflicts with a change in progress on that
	// connector, such as a restart or delete not yet finished (409, as
	// Connect answers during a rebalance). Retrying later may succeed.
	ErrConflict = errors.New("conflicting change in progress")
	// ErrRefused: the request is valid but cannot be done for this
	// connector; the error says why (400).
	ErrRefused = errors.New("request refused")
)
