package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKafkaSecurityValidation: each kafka.tls / kafka.sasl problem is
// reported at the FILE:LINE:COL of the value (or key) that causes it.
func TestKafkaSecurityValidation(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	const conns = `connectors:
  - name: c1
    source: {type: kafka}
    sink: {type: postgres}
`
	tests := []struct {
		name string
		src  string
		want []string // empty: valid
	}{
		{"valid SASL_SSL", "kafka:\n  brokers: [b:9093]\n  tls:\n    ca_file: " + ca + "\n  sasl:\n    mechanism: SCRAM-SHA-512\n    username: u\n    password: p\n", nil},
		{"valid OAUTHBEARER file", "kafka:\n  brokers: [b]\n  tls: {enabled: true}\n  sasl: {mechanism: OAUTHBEARER, token_file: " + ca + "}\n", nil},
		{"unknown mechanism", "kafka:\n  brokers: [b]\n  sasl:\n    mechanism: GSSAPI\n",
			[]string{`f.yaml:4:16: kafka.sasl.mechanism "GSSAPI": want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER`}},
		{"no mechanism", "kafka:\n  brokers: [b]\n  sasl:\n    username: u\n",
			[]string{`f.yaml:3:3: kafka.sasl.mechanism is required: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER`}},
		{"SCRAM without credentials", "kafka:\n  brokers: [b]\n  sasl:\n    mechanism: SCRAM-SHA-256\n    token: x\n",
			[]string{
				`f.yaml:3:3: kafka.sasl.username is required for SCRAM-SHA-256`,
				`f.yaml:3:3: kafka.sasl.password is required for SCRAM-SHA-256 (empty, or an unset ${VAR})`,
				`f.yaml:5:5: kafka.sasl.token is for OAUTHBEARER, not SCRAM-SHA-256`,
			}},
		{"PLAIN empty password", "kafka:\n  brokers: [b]\n  sasl:\n    mechanism: PLAIN\n    username: u\n    password: \"${NO_SUCH_VAR_20:}\"\n",
			[]string{`f.yaml:6:5: kafka.sasl.password is required for PLAIN (empty, or an unset ${VAR})`}},
		{"OAUTHBEARER both", "kafka:\n  brokers: [b]\n  sasl:\n    mechanism: OAUTHBEARER\n    token: t\n    token_file: " + ca + "\n",
			[]string{`f.yaml:6:5: kafka.sasl: set token or token_file, not both`}},
		{"OAUTHBEARER neither", "kafka:\n  brokers: [b]\n  sasl:\n    mechanism: OAUTHBEARER\n    username: u\n",
			[]string{
				`f.yaml:3:3: kafka.sasl: OAUTHBEARER needs token or token_file`,
				`f.yaml:5:5: kafka.sasl.username: OAUTHBEARER takes token or token_file, not a username or password`,
			}},
		{"token file missing", "kafka:\n  brokers: [b]\n  sasl:\n    mechanism: OAUTHBEARER\n    token_file: " + missing + "\n",
			[]string{`f.yaml:5:17: kafka.sasl.token_file: open ` + missing + `: no such file or directory`}},
		{"cert without key", "kafka:\n  brokers: [b]\n  tls:\n    cert_file: " + ca + "\n",
			[]string{`f.yaml:4:16: kafka.tls: cert_file needs key_file (mutual TLS takes both)`}},
		{"key without cert", "kafka:\n  brokers: [b]\n  tls:\n    key_file: " + ca + "\n",
			[]string{`f.yaml:4:15: kafka.tls: key_file needs cert_file (mutual TLS takes both)`}},
		{"unreadable files", "kafka:\n  brokers: [b]\n  tls:\n    ca_file: " + missing + "\n    cert_file: " + missing + "\n    key_file: " + ca + "\n",
			[]string{
				`f.yaml:4:14: kafka.tls.ca_file: open ` + missing + `: no such file or directory`,
				`f.yaml:5:16: kafka.tls.cert_file: open ` + missing + `: no such file or directory`,
			}},
		{"embedded refuses tls and sasl", "kafka:\n  embedded: {}\n  tls: {enabled: true}\n  sasl: {mechanism: PLAIN, username: u, password: p}\n",
			[]string{
				`f.yaml:3:3: kafka.tls: the embedded broker speaks plaintext only; remove kafka.tls or use brokers`,
				`f.yaml:4:3: kafka.sasl: the embedded broker speaks plaintext only; remove kafka.sasl or use brokers`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.src+conns))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want:\n%s", strings.Join(tt.want, "\n"))
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
