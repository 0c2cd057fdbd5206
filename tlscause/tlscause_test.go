package tlscause

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
)

var peer = Peer{
	Name:     "broker",
	CA:       "a CA in kafka.tls.ca_file",
	HostHint: "set kafka.tls.server_name to a name it carries",
	NotTLS:   "kafka.tls is set; is this a plaintext listener?",
}

// TestExplain: each certificate failure, wrapped as clients wrap them,
// gets its own cause in the peer's words; anything else gets none.
func TestExplain(t *testing.T) {
	cert := &x509.Certificate{}
	verifyErr := &tls.CertificateVerificationError{Err: errors.New("x509: something new")}
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"unknown CA", fmt.Errorf("dial: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{Cert: cert}}),
			"TLS: the broker's certificate is not signed by a CA in kafka.tls.ca_file (or the system's roots without one)"},
		{"host name", fmt.Errorf("dial: %w", x509.HostnameError{Certificate: cert, Host: "kafka.example"}),
			`TLS: the broker's certificate is not valid for "kafka.example" (set kafka.tls.server_name to a name it carries)`},
		{"expired", x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired},
			"TLS: the broker's certificate has expired or is not yet valid"},
		{"invalid", x509.CertificateInvalidError{Cert: cert, Reason: x509.NotAuthorizedToSign},
			"TLS: the broker's certificate is invalid"},
		{"plaintext answer", fmt.Errorf("handshake: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}),
			"TLS: the broker did not answer with TLS (kafka.tls is set; is this a plaintext listener?)"},
		{"other verification failure", verifyErr, "TLS: the broker's certificate could not be verified"},
		{"refused connection", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := peer.Explain(tt.err); got != tt.want {
				t.Errorf("Explain(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
	noPlain := peer
	noPlain.NotTLS = ""
	if got := noPlain.Explain(tls.RecordHeaderError{}); got != "" {
		t.Errorf("a peer with no NotTLS explained a record header error: %q", got)
	}
}

// TestRemoteAlert reads the alert out of the messages crypto/tls and the
// clients that wrap it produce.
func TestRemoteAlert(t *testing.T) {
	for _, tt := range []struct {
		msg   string
		alert string
		ok    bool
	}{
		{"remote error: tls: certificate required", "certificate required", true},
		{"failed to connect to `user=app`: 127.0.0.1:5432 (localhost): tls error: remote error: tls: bad certificate", "bad certificate", true},
		{"dial: (remote error: tls: unknown certificate) while connecting", "unknown certificate", true},
		{"x509: certificate signed by unknown authority", "", false},
	} {
		alert, ok := RemoteAlert(errors.New(tt.msg))
		if alert != tt.alert || ok != tt.ok {
			t.Errorf("RemoteAlert(%q) = %q, %v; want %q, %v", tt.msg, alert, ok, tt.alert, tt.ok)
		}
	}
}
