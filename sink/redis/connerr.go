package redis

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// ConnError is a failure of the sink's first commands on a new client
// (loading the scripts, a PING): the server's address, the cause in terms
// of the sink's settings when it can be told, and go-redis's error.
// go-redis reports a certificate it cannot verify, a plaintext answer to
// a TLS hello or a server that hangs up on a plaintext command as bare
// x509, TLS record or EOF errors; this is where the status trace and the
// log learn which setting to look at. It unwraps to go-redis's error, so
// classification is unchanged.
type ConnError struct {
	Addr  string
	Cause string // "" when nothing more can be said than Err
	Err   error
}

func (e *ConnError) Error() string {
	if e.Cause == "" {
		return fmt.Sprintf("redis %s: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("redis %s: %s (%v)", e.Addr, e.Cause, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// connError wraps err, met on a client built from opts, in a ConnError.
func connError(opts *redis.Options, err error) error {
	if err == nil {
		return nil
	}
	return &ConnError{Addr: opts.Addr, Cause: explainConn(err, opts.TLSConfig != nil), Err: err}
}

// explainConn says in configuration terms why a connection failed, or ""
// when err says it already (a refused TCP connection, a timeout).
func explainConn(err error, tlsOn bool) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		return "TLS: the server's certificate is not signed by a CA in tls.ca_file (or the system's roots without one)"
	case errors.As(err, &hostname):
		return fmt.Sprintf("TLS: the server's certificate is not valid for %q (set tls.server_name to a name it carries)", hostname.Host)
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return "TLS: the server's certificate has expired or is not yet valid"
		}
		return "TLS: the server's certificate is invalid"
	case errors.As(err, &record):
		return "TLS: the server did not answer with TLS (tls or a rediss:// URL is set; is this a plaintext port?)"
	case strings.Contains(msg, "remote error: tls: certificate required"):
		return "TLS: the server requires a client certificate (set tls.cert_file and tls.key_file)"
	case strings.Contains(msg, "remote error: tls: "):
		// The server's TLS alert; crypto/tls keeps its type unexported.
		return "TLS: the server rejected the handshake (is the client certificate signed by a CA it trusts?)"
	case strings.HasPrefix(msg, "WRONGPASS"):
		return "authentication refused: wrong username or password, or the ACL user is disabled"
	case strings.HasPrefix(msg, "NOAUTH"):
		return "the server requires authentication: set password, or user:password in url"
	case strings.HasPrefix(msg, "NOPERM"):
		return "the ACL user lacks a permission the sink needs (SCRIPT LOAD, EVALSHA and what its scripts call on the sink's keys)"
	case !tlsOn && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		// A TLS port reads a plaintext command as a broken hello and
		// hangs up.
		return "the server closed the connection at the first command: it most likely requires TLS (set tls, or use a rediss:// URL)"
	}
	return ""
}
