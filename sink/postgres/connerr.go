package postgres

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// connectCause says in terms of the DSN's parameters why pgx could not
// connect, or "" when pgx's error says it plainly (a wrong password, a
// refused TCP connection). pgx names the user, database and address but
// reports an untrusted certificate, a server that takes this user only
// over TLS, or one that wants a client certificate, in the server's or
// crypto/x509's words, which do not say which setting to change.
func connectCause(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		pe        *pgconn.PgError
	)
	switch {
	case errors.As(err, &unknownCA):
		return "TLS: the server's certificate is not signed by the CA in the dsn's sslrootcert (or the system's roots without one)"
	case errors.As(err, &hostname):
		return fmt.Sprintf("TLS: the server's certificate is not valid for %q (sslmode=verify-full checks the host name: connect by a name the certificate carries)", hostname.Host)
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return "TLS: the server's certificate has expired or is not yet valid"
		}
		return "TLS: the server's certificate is invalid"
	case errors.As(err, &pe) && pe.Code == "28000" && strings.Contains(pe.Message, "no encryption"):
		// pg_hba.conf has hostssl lines for this user and no host line.
		return "the server takes this connection only over TLS: set sslmode=verify-full (with sslrootcert) in the dsn instead of sslmode=disable"
	case errors.As(err, &pe) && pe.Code == "28000" && strings.Contains(pe.Message, "client certificate"):
		return "the server requires a client certificate for this user: set sslcert and sslkey in the dsn"
	case strings.Contains(err.Error(), "remote error: tls: "):
		// The server's TLS alert; crypto/tls keeps its type unexported.
		return "TLS: the server rejected the handshake (is the dsn's sslcert signed by a CA in the server's ssl_ca_file?)"
	}
	return ""
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
