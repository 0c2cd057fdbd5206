// Package tlscause says why a TLS connection to a server failed in terms of
// the setting to change. crypto/x509 and crypto/tls report an untrusted or
// expired certificate, a wrong host name or a plaintext answer in their
// own words, and a client (franz-go, pgx, go-redis) passes them on as
// they are; an operator needs to know which line of the configuration to
// look at. Each sink or client says how its settings are spelled (Peer);
// the cases are told apart here, once.
package tlscause

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Peer is the other end of a connection and the settings that govern it,
// spelled as in the caller's configuration.
type Peer struct {
	// Name is what the other end is called: "broker", "server".
	Name string
	// CA names the trust anchor: "a CA in kafka.tls.ca_file".
	CA string
	// HostHint says what to do about a certificate that does not carry
	// the name connected to: "set tls.server_name to a name it carries".
	HostHint string
	// NotTLS says what was set and what to suspect when the peer answers
	// a TLS hello with something else: "tls is set; is this a plaintext
	// port?". Empty: the case is not told apart.
	NotTLS string
}

// Explain is why err happened as far as the peer's certificate or its
// answer to our TLS hello can tell, or "" when err is none of those.
func (p Peer) Explain(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
		verify    *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("TLS: the %s's certificate is not signed by %s (or the system's roots without one)", p.Name, p.CA)
	case errors.As(err, &hostname):
		return fmt.Sprintf("TLS: the %s's certificate is not valid for %q (%s)", p.Name, hostname.Host, p.HostHint)
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return fmt.Sprintf("TLS: the %s's certificate has expired or is not yet valid", p.Name)
		}
		return fmt.Sprintf("TLS: the %s's certificate is invalid", p.Name)
	case p.NotTLS != "" && errors.As(err, &record):
		return fmt.Sprintf("TLS: the %s did not answer with TLS (%s)", p.Name, p.NotTLS)
	case errors.As(err, &verify):
		return fmt.Sprintf("TLS: the %s's certificate could not be verified", p.Name)
	}
	return ""
}

// RemoteAlert returns the TLS alert the peer sent (for example
// "certificate required", "bad certificate"), if err is one. crypto/tls
// keeps its alert type unexported, so the alert is read from the message.
func RemoteAlert(err error) (string, bool) {
	const prefix = "remote error: tls: "
	msg := err.Error()
	i := strings.Index(msg, prefix)
	if i < 0 {
		return "", false
	}
	alert := msg[i+len(prefix):]
	if j := strings.IndexAny(alert, ")\n"); j >= 0 {
		alert = alert[:j]
	}
	return alert, true
}
