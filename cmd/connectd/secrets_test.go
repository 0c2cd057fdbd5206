package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/connectd/connectd/test/pki"
)

// TestSecretsNeverShown runs the daemon with an admin token read from a
// file and two connectors whose PostgreSQL passwords come from ${VAR} and
// ${file:}, both pointing at a closed port so they log connection errors. It captures every log line (at debug) and
// the bodies of reads, writes and error responses, and checks that none
// holds any of the three secrets. The connectors' configs must show the
// references instead.
func TestSecretsNeverShown(t *testing.T) {
	const (
		token   = "tok-a8d3e1f0c2"
		envPass = "envpw-5b7e9c41"
		filePW  = "filepw-0d6a2f83"
	)
	secrets := []string{token, envPass, filePW}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	passFile := filepath.Join(dir, "pgpass")
	for p, s := range map[string]string{tokenFile: token + "\n", passFile: filePW + "\n"} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := newCluster(t, kfake.SeedTopics(1, "in"))
	path := writeConfig(t, dir, "secrets.yaml", `
admin:
	listen: 127.0.0.1:0
	token: ${file:`+tokenFile+`}
	auth: writes
kafka:
	brokers: [`+c.ListenAddrs()[0]+`]
connectors:
	- name: envpw
		source: {type: kafka, topics: [in]}
		sink: {type: postgres, table: t, dsn: "postgres://app:${PG_PASS_FOR_TEST}@127.0.0.1:1/db?connect_timeout=2"}
	- name: filepw
		source: {type: kafka, topics: [in]}
		sink: {type: postgres, table: t, dsn: "host=127.0.0.1 port=1 user=app password=${file:`+passFile+`} dbname=db connect_timeout=2"}
`)
	p := startRunEnv(t, []string{"PG_PASS_FOR_TEST=" + envPass}, path, "--log-level", "debug")
	base := p.adminURL(t)

	client := &http.Client{Timeout: 5 * time.Second}
	var bodies []string
	call := func(method, path, body string, withToken bool) int {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if withToken {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, method+" "+path+": "+string(b))
		return resp.StatusCode
	}
	// Wait until both connectors have tried PostgreSQL and logged the
	// connection error (they retry, staying RUNNING).
	for _, name := range []string{"envpw", "filepw"} {
		waitLog(t, p, `failed; the group will rejoin" connector=`+name)
	}
	for _, name := range []string{"envpw", "filepw"} {
		for _, sub := range []string{"", "/config", "/status"} {
			if code := call("GET", "/connectors/"+name+sub, "", false); code != 200 {
				t.Errorf("GET /connectors/%s%s: %d", name, sub, code)
			}
		}
	}
	call("GET", "/connectors?expand=info&expand=status", "", false)
	// Writes: refused without the token, and errors with it.
	if code := call("POST", "/connectors/envpw/restart", "", false); code != 401 {
		t.Errorf("restart without the token: %d, want 401", code)
	}
	if code := call("PUT", "/connectors/envpw/config", `{"commit.interval": "${PG_PASS_FOR_TEST}", "source": {"type": "kafka", "topics": ["in"]}, "sink": {"type": "postgres", "table": "t", "dsn": "x"}}`, true); code != 400 {
		t.Errorf("bad PUT: %d, want 400", code)
	}
	if code := call("POST", "/connectors", `{"name": "x", "config": {"source": {"type": "kafka", "topics": ["in"]}, "sink": {"type": "postgres", "table": "t", "dsn": "host=h password=${file:`+passFile+`}", "batch_size": "${file:`+passFile+`}"}}}`, true); code != 400 {
		t.Errorf("bad POST: %d, want 400", code)
	}
	if code := call("POST", "/connectors/envpw/restart", "", true); code >= 300 {
		t.Errorf("restart with the token: %d", code)
	}

	p.signal(t, syscall.SIGTERM)
	p.wait(t, 30*time.Second)

	logs := p.stderr.String()
	if !strings.Contains(logs, "127.0.0.1:1") {
		t.Errorf("the log has no connection error to check:\n%s", logs)
	}
	for _, s := range secrets {
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, s) {
				t.Errorf("a log line shows a secret: %s", line)
			}
		}
		for _, b := range bodies {
			if strings.Contains(b, s) {
				t.Errorf("a response shows a secret: %s", b)
			}
		}
	}
	all := strings.Join(bodies, "\n")
	for _, ref := range []string{"${PG_PASS_FOR_TEST}", "${file:" + passFile + "}"} {
		if !strings.Contains(all, ref) {
			t.Errorf("no response shows the reference %s:\n%s", ref, all)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("responses:\n%s", all)
	}
}

// TestRunAdminTLS runs the daemon with admin.tls and a client CA: the API
// answers HTTPS to a client with a certificate from that CA, and refuses
// one without.
func TestRunAdminTLS(t *testing.T) {
	p := pki.New(t)
	dir := t.TempDir()
	path := writeConfig(t, dir, "tls.yaml", `
admin:
	listen: 127.0.0.1:0
	tls:
		cert_file: `+p.ServerCert+`
		key_file: `+p.ServerKey+`
		client_ca_file: `+p.CAFile+`
kafka:
	embedded:
		listen: 127.0.0.1:0
		data_dir: ./data
		partitions: 1
connectors:
	- name: gen
		source: {type: generator, count: 10}
		sink: {type: kafka, topic: events}
`)
	d := startRun(t, path)
	waitLog(t, d, "scheme=https")
	m := adminAddrRE.FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("no admin address in the log:\n%s", d.stderr.String())
	}
	base := "https://" + m[1]
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: p.Pool, Certificates: []tls.Certificate{p.Client}}}}
	resp, err := withCert.Get(base + "/connectors")
	if err != nil {
		t.Fatalf("HTTPS with a client certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HTTPS with a client certificate: %d", resp.StatusCode)
	}
	without := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.Pool}}}
	if resp, err := without.Get(base + "/connectors"); err == nil {
		resp.Body.Close()
		t.Errorf("a client without a certificate was answered %d", resp.StatusCode)
	}
	d.signal(t, syscall.SIGTERM)
	if code := d.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}
