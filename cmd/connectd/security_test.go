package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/connectd/connectd/test/pki"
)

// TestRunSASLSSL runs two exactly_once connectors (generator → Kafka, and
// Kafka → Kafka through a consumer group and transactions) against a
// broker that takes only mutual TLS and SCRAM-SHA-512, checks both with
// `connectd verify` (whose clients need the same settings), and shows that
// a wrong password stops `run` and `verify` at once with the broker and
// the cause named, instead of connectors that never progress.
func TestRunSASLSSL(t *testing.T) {
	certs := pki.New(t)
	c := newCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "connectd", "s3cret"), kfake.TLS(certs.ServerTLS()))
	addr := c.ListenAddrs()[0]
	dir := t.TempDir()
	path := writeConfig(t, dir, "sasl-ssl.yaml", `
instance_id: sasl-ssl
admin:
	listen: 127.0.0.1:0
kafka:
	brokers: [`+addr+`]
	tls:
		ca_file: `+certs.CAFile+`
		cert_file: `+certs.ClientCert+`
		key_file: `+certs.ClientKey+`
	sasl:
		mechanism: SCRAM-SHA-512
		username: connectd
		password: ${KAFKA_PASSWORD}
connectors:
	- name: gen
		shutdown_timeout: 5s
		source: {type: generator, count: 2000, key_cardinality: 10}
		sink: {type: kafka, topic: raw}
	- name: copy
		shutdown_timeout: 5s
		source: {type: kafka, topics: [raw]}
		sink: {type: kafka, topic: copied}
`)

	t.Run("wrong password", func(t *testing.T) {
		env := []string{"KAFKA_PASSWORD=wrong"}
		want := "kafka broker " + addr + `: SASL SCRAM-SHA-512 authentication as user "connectd" refused: wrong username, password or token`
		r := connectd(t, time.Minute, env, "run", "-c", path)
		// The log quotes the error as a logfmt string.
		if r.code != exitFail || !strings.Contains(strings.ReplaceAll(r.stderr, `\"`, `"`), want) {
			t.Errorf("run: exit %d, want %d and %q in:\n%s", r.code, exitFail, want, r.stderr)
		}
		if strings.Contains(r.stderr, "wrong\"") || strings.Contains(r.stderr, "=wrong") {
			t.Errorf("run's log carries the password:\n%s", r.stderr)
		}
		r = connectd(t, time.Minute, env, "verify", "-c", path, "--connector", "gen", "--timeout", "30s")
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("verify: exit %d, want failure and %q in:\n%s", r.code, want, r.stderr)
		}
	})

	env := []string{"KAFKA_PASSWORD=s3cret"}
	p := startRunEnv(t, env, path)
	base := p.adminURL(t)
	waitRecordsIn(t, base, "gen", 2000)
	waitRecordsIn(t, base, "copy", 2000)
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	for _, name := range []string{"gen", "copy"} {
		r := connectd(t, 2*time.Minute, env, "verify", "-c", path, "--connector", name, "--timeout", "90s", "--stopped")
		if r.code != 0 || !strings.Contains(r.stdout, `"expected":2000`) || !strings.Contains(r.stdout, `"duplicates":0`) || !strings.Contains(r.stdout, `"missing":0`) {
			t.Errorf("verify %s: exit %d\nstdout: %s\nstderr: %s", name, r.code, r.stdout, r.stderr)
		}
	}
}
