package redis

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/pki"
)

// TestConfigTLS: the tls block's files are read when the config is
// validated, each error names the tls field at fault, and a valid block
// becomes the client's TLS configuration with the test CA as its only
// root, the client certificate, and the dialed host as the server name
// unless server_name says otherwise, whatever the URL's scheme. Against
// real servers: test/tlssinks.
func TestConfigTLS(t *testing.T) {
	certs := pki.New(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  config.TLS
		err  string // prefix of the error; "" for valid
	}{
		{"ca only", config.TLS{CAFile: certs.CAFile}, ""},
		{"mutual", config.TLS{CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}, ""},
		{"system roots", config.TLS{Enabled: true}, ""},
		{"missing ca file", config.TLS{CAFile: "/nonexistent/ca.pem"}, "tls.ca_file: open /nonexistent/ca.pem"},
		{"ca file without a certificate", config.TLS{CAFile: notPEM}, "tls.ca_file " + notPEM + ": no PEM certificate"},
		{"cert without key", config.TLS{CertFile: certs.ClientCert}, "tls: cert_file and key_file go together"},
		{"key that is not the cert's", config.TLS{CertFile: certs.ClientCert, KeyFile: certs.ServerKey}, "tls cert_file"},
		{"insecure", config.TLS{InsecureSkipVerify: true}, "tls.insecure_skip_verify: not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tls := tc.tls
			c := Config{Addr: "127.0.0.1:6390", TLS: &tls}
			err := c.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
				t.Fatalf("want an error starting %q, got %v", tc.err, err)
			}
		})
	}

	for _, tc := range []struct {
		name, addr, url, serverName string
		tls                         *config.TLS
		wantName                    string // "" for no TLS
	}{
		{name: "no block", addr: "127.0.0.1:6390"},
		{name: "empty block is off", addr: "127.0.0.1:6390", tls: &config.TLS{}},
		{name: "addr", addr: "127.0.0.1:6390", tls: &config.TLS{CAFile: certs.CAFile}, wantName: "127.0.0.1"},
		{name: "server_name", addr: "127.0.0.1:6390", tls: &config.TLS{CAFile: certs.CAFile, ServerName: "localhost"}, wantName: "localhost"},
		{name: "redis url", url: "redis://u:p@db.internal:6390/1", tls: &config.TLS{CAFile: certs.CAFile}, wantName: "db.internal"},
		{name: "rediss url", url: "rediss://u:p@db.internal:6390/1", tls: &config.TLS{CAFile: certs.CAFile}, wantName: "db.internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Addr: tc.addr, URL: tc.url, TLS: tc.tls}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			o, err := c.options()
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantName == "" {
				if o.TLSConfig != nil {
					t.Fatalf("TLS on without a tls block: %+v", o.TLSConfig)
				}
				return
			}
			if o.TLSConfig == nil {
				t.Fatal("no TLS with a tls block")
			}
			if o.TLSConfig.ServerName != tc.wantName {
				t.Errorf("server name %q, want %q", o.TLSConfig.ServerName, tc.wantName)
			}
			// The block's CA, not the system's roots: the test server
			// certificate verifies with it.
			leaf, err := x509.ParseCertificate(certs.Server.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: o.TLSConfig.RootCAs, DNSName: "localhost"}); err != nil {
				t.Errorf("the client's roots do not verify the test server: %v", err)
			}
		})
	}
}

// TestConnErrorExplains: the causes connError puts in front of go-redis's
// errors, and that the wrapped error stays classifiable.
func TestConnErrorExplains(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		tlsOn bool
		want  string
	}{
		{"unknown CA", fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), true, "not signed by a CA in tls.ca_file"},
		{"host name", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "db"}, true, `not valid for "db" (set tls.server_name`},
		{"expired", x509.CertificateInvalidError{Reason: x509.Expired}, true, "has expired"},
		{"client certificate", errors.New("remote error: tls: certificate required"), true, "requires a client certificate"},
		{"wrong password", errors.New("WRONGPASS invalid username-password pair or user is disabled."), true, "authentication refused"},
		{"plaintext against TLS", io.EOF, false, "it most likely requires TLS"},
		{"EOF with TLS on", io.EOF, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := explainConn(tc.err, tc.tlsOn); !strings.Contains(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("explainConn = %q, want %q", got, tc.want)
			}
		})
	}
	o, err := (&Config{Addr: "127.0.0.1:6390", TLS: &config.TLS{Enabled: true}}).options()
	if err != nil {
		t.Fatal(err)
	}
	err = connError(o, io.EOF)
	if !errors.Is(err, io.EOF) || !strings.HasPrefix(err.Error(), "redis 127.0.0.1:6390: ") {
		t.Errorf("connError = %v: want the address first and io.EOF inside", err)
	}
	mustKind(t, classify("claim", err), connector.CommitUnknown)
}
