// Package pki makes a throwaway certificate authority for tests: a CA, a
// server certificate for the loopback addresses and a client certificate,
// written as PEM files under a test's temporary directory. Keys are made
// afresh for every test, so no key material is checked in.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a CA and the certificates it issued, as files and as values.
type PKI struct {
	// CAFile holds the CA's certificate; Pool trusts it.
	CAFile string
	Pool   *x509.CertPool
	// ServerCert and ServerKey are a server certificate valid for
	// 127.0.0.1, ::1 and localhost.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are a client certificate (CN "client");
	// Client is the same pair loaded for a tls.Config.
	ClientCert, ClientKey string
	Client                tls.Certificate
	// ExpiredClientCert and ExpiredClientKey are a client certificate
	// (CN "client") that expired an hour ago.
	ExpiredClientCert, ExpiredClientKey string
	// Server is the server certificate loaded, for a test server's
	// tls.Config (ServerTLS).
	Server tls.Certificate
}

// New issues a fresh CA, server and client certificate under t.TempDir().
func New(t testing.TB) *PKI { return newPKI(t, false) }

// NewExpired is New with a server certificate that expired an hour ago.
func NewExpired(t testing.TB) *PKI { return newPKI(t, true) }

// ServerTLS is a server's TLS configuration (kfake.TLS, an HTTPS test
// server) that requires a client certificate signed by p's CA: mutual TLS.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.Server}, ClientCAs: p.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

func newPKI(t testing.TB, expiredServer bool) *PKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "connectd test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{CAFile: filepath.Join(dir, "ca.pem"), Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	writePEM(t, p.CAFile, "CERTIFICATE", caDER)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile string, expired bool) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
			tmpl.DNSNames = []string{"localhost"}
		}
		if expired {
			tmpl.NotBefore, tmpl.NotAfter = now.Add(-2*time.Hour), now.Add(-time.Hour)
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	}
	p.ServerCert, p.ServerKey = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	issue(2, "localhost", x509.ExtKeyUsageServerAuth, p.ServerCert, p.ServerKey, expiredServer)
	p.ClientCert, p.ClientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	issue(3, "client", x509.ExtKeyUsageClientAuth, p.ClientCert, p.ClientKey, false)
	p.ExpiredClientCert, p.ExpiredClientKey = filepath.Join(dir, "client-expired.pem"), filepath.Join(dir, "client-expired-key.pem")
	issue(4, "client", x509.ExtKeyUsageClientAuth, p.ExpiredClientCert, p.ExpiredClientKey, true)
	if p.Client, err = tls.LoadX509KeyPair(p.ClientCert, p.ClientKey); err != nil {
		t.Fatal(err)
	}
	if p.Server, err = tls.LoadX509KeyPair(p.ServerCert, p.ServerKey); err != nil {
		t.Fatal(err)
	}
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
