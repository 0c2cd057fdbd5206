package admin_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/pki"
)

// serveTLS serves an admin API over the fake with admin.tls set from t
// and returns its https:// base URL; it shuts down when the test ends.
func serveTLS(t *testing.T, f *fake, at *config.AdminTLS) string {
	t.Helper()
	tlsCfg, err := admin.TLSConfig(at)
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.New(f, nil, admin.WithTLS(tlsCfg))
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "https://" + srv.Addr()
}

func client(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func getCode(c *http.Client, u string) (int, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestTLS(t *testing.T) {
	p := pki.New(t)
	f := newFake()
	base := serveTLS(t, f, &config.AdminTLS{CertFile: p.ServerCert, KeyFile: p.ServerKey})

	if code, err := getCode(client(&tls.Config{RootCAs: p.Pool}), base+"/connectors"); err != nil || code != 200 {
		t.Fatalf("HTTPS with the CA: %d %v", code, err)
	}
	// A client that does not trust the CA refuses the server.
	var unknown x509.UnknownAuthorityError
	if _, err := getCode(client(&tls.Config{}), base+"/connectors"); !errors.As(err, &unknown) {
		t.Errorf("HTTPS without the CA: %v, want an unknown authority error", err)
	}
	// Plain HTTP to the HTTPS port gets no API answer.
	if code, err := getCode(client(nil), strings.Replace(base, "https:", "http:", 1)+"/connectors"); err == nil && code == 200 {
		t.Error("plain HTTP was served on the TLS port")
	}
}

func TestMutualTLS(t *testing.T) {
	p := pki.New(t)
	f := newFake()
	base := serveTLS(t, f, &config.AdminTLS{CertFile: p.ServerCert, KeyFile: p.ServerKey, ClientCAFile: p.CAFile})

	if code, err := getCode(client(&tls.Config{RootCAs: p.Pool, Certificates: []tls.Certificate{p.Client}}), base+"/connectors"); err != nil || code != 200 {
		t.Fatalf("mTLS with a client certificate: %d %v", code, err)
	}
	if code, err := getCode(client(&tls.Config{RootCAs: p.Pool}), base+"/connectors"); err == nil {
		t.Errorf("a client without a certificate was answered %d", code)
	}
	// A certificate from another CA is refused too.
	other := pki.New(t)
	if code, err := getCode(client(&tls.Config{RootCAs: p.Pool, Certificates: []tls.Certificate{other.Client}}), base+"/connectors"); err == nil {
		t.Errorf("a client certificate from another CA was answered %d", code)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	p := pki.New(t)
	for _, at := range []*config.AdminTLS{
		{CertFile: p.ServerCert, KeyFile: p.ClientKey},
		{CertFile: p.ServerCert, KeyFile: p.ServerKey, ClientCAFile: p.ServerKey},
		{CertFile: p.ServerCert, KeyFile: p.ServerKey, ClientCAFile: p.CAFile + ".missing"},
	} {
		if _, err := admin.TLSConfig(at); err == nil {
			t.Errorf("TLSConfig(%+v) = nil error", at)
		}
	}
}

// TestAuthWrites: with admin.auth writes, reads are open and every write
// needs the token; with all (the default), reads need it too. The probes
// are open in both.
func TestAuthWrites(t *testing.T) {
	const body = `{"name": "b", "source": {"type": "generator"}, "sink": {"type": "kafka", "topic": "t"}}`
	for _, tc := range []struct {
		auth               string
		method, path, body string
		token              bool
		code               int
	}{
		{config.AdminAuthWrites, "GET", "/connectors", "", false, 200},
		{config.AdminAuthWrites, "HEAD", "/connectors", "", false, 200},
		{config.AdminAuthWrites, "GET", "/connectors/a/config", "", false, 200},
		{config.AdminAuthWrites, "GET", "/nope", "", false, 404},
		{config.AdminAuthWrites, "POST", "/connectors", `{"name": "b", "config": ` + body + `}`, false, 401},
		{config.AdminAuthWrites, "PUT", "/connectors/b/config", body, false, 401},
		{config.AdminAuthWrites, "PUT", "/connectors/a/pause", "", false, 401},
		{config.AdminAuthWrites, "DELETE", "/connectors/a", "", false, 401},
		{config.AdminAuthWrites, "POST", "/connectors/a/restart", "", false, 401},
		{config.AdminAuthWrites, "OPTIONS", "/connectors", "", false, 401},
		{config.AdminAuthWrites, "GET", "/health", "", false, 200},
		{config.AdminAuthWrites, "PUT", "/connectors/a/pause", "", true, 202},
		{config.AdminAuthAll, "GET", "/connectors", "", false, 401},
		{config.AdminAuthAll, "GET", "/connectors/a/config", "", false, 401},
		{config.AdminAuthAll, "GET", "/connectors", "", true, 200},
		{config.AdminAuthAll, "GET", "/ready", "", false, 200},
		{"", "GET", "/connectors", "", false, 401},
	} {
		t.Run(tc.auth+" "+tc.method+" "+tc.path, func(t *testing.T) {
			f := newFake()
			f.add(parsed(t, "a", `{"name": "a", "source": {"type": "generator"}, "sink": {"type": "kafka", "topic": "t"}}`), nil, connector.Running, nil)
			h := admin.New(f, nil, admin.WithToken("s3cret"), admin.WithAuth(tc.auth)).Handler()
			var hdr []string
			if tc.token {
				hdr = []string{"Authorization", "Bearer s3cret"}
			}
			before := f.snapshot()
			rec := do(t, h, tc.method, tc.path, tc.body, hdr...)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if rec.Code == 401 {
				unchanged(t, f, before)
			}
		})
	}
}
