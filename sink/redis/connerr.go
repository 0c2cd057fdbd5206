package redis

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/tlscause"
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
	if cause := redisPeer.Explain(err); cause != "" {
		return cause
	}
	if alert, ok := tlscause.RemoteAlert(err); ok {
		if alert == "certificate required" {
			return "TLS: the server requires a client certificate (set tls.cert_file and tls.key_file)"
		}
		return "TLS: the server rejected the handshake (is the client certificate signed by a CA it trusts?)"
	}
	msg := err.Error()
	switch {
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

// redisPeer is a Redis server as the sink's tls block governs it.
var redisPeer = tlscause.Peer{
	Name:     "server",
	CA:       "a CA in tls.ca_file",
	HostHint: "set tls.server_name to a name it carries",
	NotTLS:   "tls or a rediss:// URL is set; is this a plaintext port?",
}
