package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/connectd/connectd/tlscause"
)

// connectCause says in terms of the DSN's parameters why pgx could not
// connect, or "" when pgx's error says it plainly (a wrong password, a
// refused TCP connection). pgx names the user, database and address but
// reports an untrusted certificate, a server that takes this user only
// over TLS, or one that wants a client certificate, in the server's or
// crypto/x509's words, which do not say which setting to change.
func connectCause(err error) string {
	if cause := dsnPeer.Explain(err); cause != "" {
		return cause
	}
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "28000" && strings.Contains(pe.Message, "no encryption"):
		// pg_hba.conf has hostssl lines for this user and no host line.
		return "the server takes this connection only over TLS: set sslmode=verify-full (with sslrootcert) in the dsn instead of sslmode=disable"
	case errors.As(err, &pe) && pe.Code == "28000" && strings.Contains(pe.Message, "client certificate"):
		return "the server requires a client certificate for this user: set sslcert and sslkey in the dsn"
	}
	if _, ok := tlscause.RemoteAlert(err); ok {
		return "TLS: the server rejected the handshake (is the dsn's sslcert signed by a CA in the server's ssl_ca_file?)"
	}
	return ""
}

// dsnPeer is a PostgreSQL server as the DSN's TLS parameters govern it.
// pgx tries sslmode=prefer's plaintext fallback itself, so a server that
// does not speak TLS is not a case here.
var dsnPeer = tlscause.Peer{
	Name:     "server",
	CA:       "the CA in the dsn's sslrootcert",
	HostHint: "sslmode=verify-full checks the host name: connect by a name the certificate carries",
}

// connectError is a failure to connect with its cause in the DSN's terms
// in front; it unwraps to pgx's error, so classify sees the SQLSTATE.
type connectError struct {
	cause string
	err   error
}

func (e *connectError) Error() string { return e.cause + " (" + e.err.Error() + ")" }
func (e *connectError) Unwrap() error { return e.err }

// explainConnect returns err with connectCause in front when it is a
// failure to connect that the cause explains, else err unchanged.
func explainConnect(err error) error {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		return err
	}
	if cause := connectCause(err); cause != "" {
		return &connectError{cause: cause, err: err}
	}
	return err
}
