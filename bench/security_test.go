package bench

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/test/pki"
)

// TestKafkaSecurityConfig: with -kafka-tls-dir and -kafka-sasl, the
// generated connectd config carries kafka.tls (CA and client pair from the
// directory) and kafka.sasl with the password as a ${file:} reference that
// connectd resolves to the file's content, the harness's own clients get
// a TLS dialer and SASL, and the password appears nowhere in the config
// text or the report's description.
func TestKafkaSecurityConfig(t *testing.T) {
	certs := pki.New(t) // ca.pem, client.pem, client-key.pem in one directory
	dir := filepath.Dir(certs.CAFile)
	pw := filepath.Join(t.TempDir(), "password")
	const secret = "s3cret-pw"
	if err := os.WriteFile(pw, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sec, err := parseKafkaSecurity(dir, "SCRAM-SHA-512:connectd", pw)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sec.String(), `SASL_SSL: SASL SCRAM-SHA-512 as "connectd", mutual TLS`; got != want {
		t.Errorf("description %q, want %q", got, want)
	}

	c := connectdConfig{
		Scenario:    Scenario{System: Connectd, Sink: SinkKafka, Guarantee: ExactlyOnce, CommitInterval: 100 * time.Millisecond, RecordSize: 100, Partitions: 12},
		AdminListen: "127.0.0.1:18083", Brokers: []string{"127.0.0.1:9393"}, Security: sec,
		InputTopics: []string{"bench-in"}, Group: "bench-g", OutputTopic: "bench-out",
	}
	text := c.render()
	if strings.Contains(text, secret) || strings.Contains(sec.String(), secret) {
		t.Fatalf("the password is in the config or the description:\n%s", text)
	}
	cfg, err := config.Parse("gen.yaml", []byte(text))
	if err != nil {
		t.Fatalf("%s\n%v", text, err)
	}
	if _, err := pipeline.Decode(cfg.Connectors[0]); err != nil {
		t.Fatal(err)
	}
	k := cfg.Kafka
	if k.TLS == nil || k.TLS.CAFile != certs.CAFile || k.TLS.CertFile != certs.ClientCert || k.TLS.KeyFile != certs.ClientKey {
		t.Errorf("kafka.tls %+v, want ca %s, cert %s, key %s", k.TLS, certs.CAFile, certs.ClientCert, certs.ClientKey)
	}
	if k.SASL == nil || k.SASL.Mechanism != "SCRAM-SHA-512" || k.SASL.Username != "connectd" || k.SASL.Password != secret {
		t.Errorf("kafka.sasl %+v, want SCRAM-SHA-512 connectd with the file's password", k.SASL)
	}

	// The harness's clients: a TLS dialer with the CA and the client
	// certificate, and SASL.
	opts, err := sec.clientOpts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers("127.0.0.1:1"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tc, _ := cl.OptValue(kgo.DialTLSConfig).(*tls.Config)
	if tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 {
		t.Errorf("harness client TLS config %+v, want the CA pool and one client certificate", tc)
	}
	if m := cl.OptValues(kgo.SASL); len(m) == 0 || m[0] == nil {
		t.Errorf("harness client has no SASL mechanism")
	}

	// Plaintext: no blocks, no options.
	plain, err := parseKafkaSecurity("", "", "")
	if err != nil || plain.On() || plain.String() != "plaintext" {
		t.Fatalf("plaintext: %+v %v", plain, err)
	}
	c.Security = plain
	if text := c.render(); strings.Contains(text, "tls:") || strings.Contains(text, "sasl:") {
		t.Errorf("plaintext config has security blocks:\n%s", text)
	}
	if opts, _ := plain.clientOpts(); len(opts) != 0 {
		t.Errorf("plaintext: %d client options, want none", len(opts))
	}
}

// TestKafkaSecurityRefused: bad flags fail before any run, and peers,
// which are not given the settings, are refused against a secured Kafka.
func TestKafkaSecurityRefused(t *testing.T) {
	for _, tt := range []struct{ tlsDir, sasl, pw, want string }{
		{"", "SCRAM-SHA-512", "/x", "want MECHANISM:USER"},
		{"", "GSSAPI:u", "/x", "mechanism GSSAPI"},
		{"", "PLAIN:u", "", "needs -kafka-sasl-password-file"},
		{"", "", "/x", "without -kafka-sasl"},
		{t.TempDir(), "", "", "ca.pem"},
	} {
		_, err := parseKafkaSecurity(tt.tlsDir, tt.sasl, tt.pw)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q %q %q: %v, want an error with %q", tt.tlsDir, tt.sasl, tt.pw, err, tt.want)
		}
	}
	sec := KafkaSecurity{SASL: &config.SASL{Mechanism: "PLAIN"}, Desc: "SASL_PLAINTEXT"}
	cd := Scenario{System: Connectd, Sink: SinkKafka, Guarantee: ExactlyOnce}
	st := cd
	st.System = Streams
	if err := refusePeers([]Scenario{cd}, sec); err != nil {
		t.Errorf("connectd refused: %v", err)
	}
	if err := refusePeers([]Scenario{cd, st}, sec); err == nil || !strings.Contains(err.Error(), "streams") {
		t.Errorf("Streams against a secured Kafka: %v, want refused", err)
	}
	if err := refusePeers([]Scenario{st}, KafkaSecurity{}); err != nil {
		t.Errorf("Streams against plaintext: %v", err)
	}
}
