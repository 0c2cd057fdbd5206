package kafkaauth

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/test/pki"
)

// secureCluster starts kfake with a TLS listener that requires a client
// certificate from p's CA (mutual TLS) and SASL with one user.
func secureCluster(t *testing.T, p *pki.PKI, mechanism, user, pass string) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
		kfake.EnableSASL(), kfake.Superuser(mechanism, user, pass),
		kfake.TLS(p.ServerTLS()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// roundTrip produces one record to topic t through a client built with
// opts, then consumes it back with another: both directions authenticate.
func roundTrip(addr string, opts []kgo.Opt) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RetryTimeout(3 * time.Second), kgo.RequestRetries(1)}, opts...)
	p, err := kgo.NewClient(base...)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("hello")}).FirstErr(); err != nil {
		return err
	}
	c, err := kgo.NewClient(append(base, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return err
		}
		for _, r := range fs.Records() {
			if string(r.Value) == "hello" {
				return nil
			}
		}
	}
}

// TestRoundTrip produces and consumes through mutual TLS and each
// password mechanism kfake serves.
func TestRoundTrip(t *testing.T) {
	p := pki.New(t)
	for _, mech := range []string{ScramSHA256, ScramSHA512, Plain} {
		t.Run(mech, func(t *testing.T) {
			addr := secureCluster(t, p, mech, "connectd", "s3cret")
			k := config.Kafka{Brokers: []string{addr},
				TLS:  &config.TLS{CAFile: p.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey, ServerName: "localhost"},
				SASL: &config.SASL{Mechanism: mech, Username: "connectd", Password: "s3cret"}}
			opts, err := Options(k)
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(context.Background(), k.Brokers, opts, k); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if err := roundTrip(addr, opts); err != nil {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
}

// TestCheckErrors: each misconfiguration gives one line naming the broker
// and the cause, marked ErrSecurity, and quickly (franz-go alone would
// retry until a request times out).
func TestCheckErrors(t *testing.T) {
	p := pki.New(t)
	other := pki.New(t) // a CA that did not sign the broker's certificate
	addr := secureCluster(t, p, ScramSHA512, "connectd", "s3cret")
	tl := &config.TLS{CAFile: p.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey}
	good := &config.SASL{Mechanism: ScramSHA512, Username: "connectd", Password: "s3cret"}
	for _, tc := range []struct {
		name, addr string
		k          config.Kafka
		want       string
	}{
		{"wrong password", addr, config.Kafka{TLS: tl, SASL: &config.SASL{Mechanism: ScramSHA512, Username: "connectd", Password: "wrong"}},
			`SASL SCRAM-SHA-512 authentication as user "connectd" refused: wrong username, password or token`},
		{"wrong CA", addr, config.Kafka{TLS: &config.TLS{CAFile: other.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey}, SASL: good},
			"TLS: the broker's certificate is not signed by a CA in kafka.tls.ca_file"},
		{"wrong server name", addr, config.Kafka{TLS: &config.TLS{CAFile: p.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey, ServerName: "kafka.example"}, SASL: good},
			`TLS: the broker's certificate is not valid for "kafka.example"`},
		{"no client certificate", addr, config.Kafka{TLS: &config.TLS{CAFile: p.CAFile}, SASL: good},
			"TLS: the broker requires a client certificate"},
		{"expired client certificate", addr, config.Kafka{TLS: &config.TLS{CAFile: p.CAFile, CertFile: p.ExpiredClientCert, KeyFile: p.ExpiredClientKey}, SASL: good},
			"TLS: the broker rejected our client certificate, which expired at"},
		{"plaintext against TLS", addr, config.Kafka{SASL: good},
			"the broker closed the connection at the first request: it most likely requires TLS, and kafka.tls is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := Options(tc.k)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = Check(context.Background(), []string{tc.addr}, opts, tc.k)
			if err == nil {
				t.Fatal("Check succeeded")
			}
			msg := err.Error()
			if first, _, _ := strings.Cut(msg, "\n"); !strings.HasPrefix(first, "kafka broker "+tc.addr+": "+tc.want) {
				t.Errorf("error = %q\nwant it to start with %q", msg, "kafka broker "+tc.addr+": "+tc.want)
			}
			if !errors.Is(err, ErrSecurity) {
				t.Errorf("not ErrSecurity: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestCheckTLSAgainstPlaintext: kfake, unlike Kafka, waits for the rest of
// what it takes for a huge request, so the handshake gets no answer; the
// error names the likely cause but is not ErrSecurity, since a slow broker
// looks the same.
func TestCheckTLSAgainstPlaintext(t *testing.T) {
	p := pki.New(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	k := config.Kafka{TLS: &config.TLS{CAFile: p.CAFile}}
	opts, _ := Options(k)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = Check(ctx, []string{addr}, opts, k)
	want := "kafka broker " + addr + ": no answer to the TLS handshake or first request in time (kafka.tls is set; is this a plaintext listener?)"
	if err == nil || !strings.HasPrefix(err.Error(), want) || errors.Is(err, ErrSecurity) {
		t.Fatalf("err = %v\nwant %q, not ErrSecurity", err, want)
	}
}

// TestCheckTLSAgainstKafkaPlaintext: Kafka itself drops a connection
// whose first bytes (a ClientHello) announce a request above its size
// limit; a listener that does the same stands in for it.
func TestCheckTLSAgainstKafkaPlaintext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 4))
			c.Close()
		}
	}()
	p := pki.New(t)
	k := config.Kafka{TLS: &config.TLS{CAFile: p.CAFile}}
	opts, _ := Options(k)
	err = Check(context.Background(), []string{l.Addr().String()}, opts, k)
	want := "kafka broker " + l.Addr().String() + ": the broker closed the connection during the TLS handshake (kafka.tls is set; is this a plaintext listener?)"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrSecurity) {
		t.Fatalf("err = %v\nwant %q, ErrSecurity", err, want)
	}
}

// TestCheckExpiredCertificate: a broker whose certificate expired.
func TestCheckExpiredCertificate(t *testing.T) {
	p := pki.NewExpired(t)
	addr := secureCluster(t, p, Plain, "u", "p")
	k := config.Kafka{TLS: &config.TLS{CAFile: p.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey}, SASL: &config.SASL{Mechanism: Plain, Username: "u", Password: "p"}}
	opts, _ := Options(k)
	err := Check(context.Background(), []string{addr}, opts, k)
	want := "kafka broker " + addr + ": TLS: the broker's certificate has expired or is not yet valid"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrSecurity) {
		t.Fatalf("err = %v\nwant %q, ErrSecurity", err, want)
	}
}

// TestInsecureSkipVerify: any certificate is accepted, and the warning
// goes to the default logger (the daemon's).
func TestInsecureSkipVerify(t *testing.T) {
	var logs strings.Builder
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	p, other := pki.New(t), pki.New(t)
	addr := secureCluster(t, p, Plain, "u", "p")
	// other's CA did not sign the broker's certificate.
	k := config.Kafka{TLS: &config.TLS{CAFile: other.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey, InsecureSkipVerify: true}, SASL: &config.SASL{Mechanism: Plain, Username: "u", Password: "p"}}
	opts, err := Options(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(addr, opts); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "NOT verified") {
		t.Errorf("no warning logged: %q", logs.String())
	}
}

// TestCheckUnreachable: a broker that is down is not a security problem;
// the daemon starts and retries as before.
func TestCheckUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	k := config.Kafka{SASL: &config.SASL{Mechanism: Plain, Username: "u", Password: "p"}}
	opts, _ := Options(k)
	err = Check(context.Background(), []string{addr}, opts, k)
	if err == nil || errors.Is(err, ErrSecurity) || !strings.Contains(err.Error(), "kafka broker "+addr) {
		t.Fatalf("err = %v, want a plain connection error naming %s", err, addr)
	}
}

// TestOAuthTokenFile: the token file is read at each authentication, so a
// refreshed token is used by the next connection.
func TestOAuthTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	m, err := Mechanism(config.SASL{Mechanism: OAuthBearer, TokenFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Authenticate(context.Background(), "b:9092"); err == nil || !strings.Contains(err.Error(), "kafka.sasl.token_file") {
		t.Fatalf("missing file: err = %v", err)
	}
	for _, tok := range []string{"first-token", "second-token"} {
		if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, first, err := m.Authenticate(context.Background(), "b:9092")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(first), "auth=Bearer "+tok+"\x01") {
			t.Errorf("client first message %q does not carry %s", first, tok)
		}
	}
	static, _ := Mechanism(config.SASL{Mechanism: OAuthBearer, Token: "static"})
	if _, first, _ := static.Authenticate(context.Background(), "b:9092"); !strings.Contains(string(first), "Bearer static") {
		t.Errorf("static token: %q", first)
	}
}

func TestOptionsNone(t *testing.T) {
	opts, err := Options(config.Kafka{Brokers: []string{"b:9092"}})
	if err != nil || len(opts) != 0 {
		t.Fatalf("opts = %d, err = %v", len(opts), err)
	}
	if _, err := Options(config.Kafka{SASL: &config.SASL{Mechanism: "GSSAPI"}}); err == nil {
		t.Fatal("GSSAPI accepted")
	}
}

// TestCheckPlaintextAgainstKafkaTLS: Kafka's TLS listener answers a
// plaintext request with a TLS alert record (Java's SSLEngine), which
// franz-go reads as a response of some 350 MB and names only in its
// message; without a case for it Check called it no security problem and
// the daemon started with connectors that never connect
// (test/kafkasecure found it). A listener that answers the same way
// stands in for Kafka.
func TestCheckPlaintextAgainstKafkaTLS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 4))
			// Alert record, TLS 1.2, 2 bytes: fatal, handshake_failure.
			_, _ = c.Write([]byte{21, 3, 3, 0, 2, 2, 40})
			c.Close()
		}
	}()
	k := config.Kafka{SASL: &config.SASL{Mechanism: ScramSHA512, Username: "connectd", Password: "s3cret"}}
	opts, _ := Options(k)
	start := time.Now()
	err = Check(context.Background(), []string{l.Addr().String()}, opts, k)
	want := "kafka broker " + l.Addr().String() + ": the broker answered with a TLS alert: this listener requires TLS, and kafka.tls is not set"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrSecurity) {
		t.Fatalf("err = %v\nwant %q, ErrSecurity", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestCheckClientCertificateTLS12: over TLS 1.2 a missing client
// certificate is answered with the alert bad_certificate, as Kafka (Java)
// answers it over TLS 1.3 too, not certificate_required; the cause is the
// missing certificate when none is configured, and the CA when one is.
func TestCheckClientCertificateTLS12(t *testing.T) {
	p := pki.New(t)
	other := pki.New(t) // its client certificate is not signed by p's CA
	srv := p.ServerTLS()
	srv.MaxVersion = tls.VersionTLS12
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	for _, tc := range []struct {
		name string
		tls  *config.TLS
		want string
	}{
		{"none", &config.TLS{CAFile: p.CAFile}, "TLS: the broker requires a client certificate (set kafka.tls.cert_file and key_file)"},
		{"untrusted", &config.TLS{CAFile: p.CAFile, CertFile: other.ClientCert, KeyFile: other.ClientKey},
			"TLS: the broker rejected the handshake (is our client certificate signed by a CA it trusts?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := config.Kafka{TLS: tc.tls}
			opts, err := Options(k)
			if err != nil {
				t.Fatal(err)
			}
			err = Check(context.Background(), []string{addr}, opts, k)
			want := "kafka broker " + addr + ": " + tc.want
			if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrSecurity) {
				t.Fatalf("err = %v\nwant %q, ErrSecurity", err, want)
			}
		})
	}
}
