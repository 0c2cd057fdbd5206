package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/connectd/connectd/test/pki"
)

func TestAdminValid(t *testing.T) {
	p := pki.New(t)
	src := minimal + `admin:
  token: t0k
  auth: writes
  tls:
    cert_file: ` + p.ServerCert + `
    key_file: ` + p.ServerKey + `
    client_ca_file: ` + p.CAFile + "\n"
	cfg, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Auth != AdminAuthWrites || cfg.Admin.TLS == nil || cfg.Admin.TLS.ClientCAFile != p.CAFile {
		t.Errorf("admin = %+v", cfg.Admin)
	}
}

// TestAdminErrors checks each bad admin setting is reported at its value
// (or its section when missing), naming files but none of their content.
func TestAdminErrors(t *testing.T) {
	p := pki.New(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tt := range []struct {
		name, admin string
		want        []string
	}{
		{
			name:  "unknown auth",
			admin: "  token: x\n  auth: reads\n",
			want:  []string{`f.yaml:11:9: admin.auth must be all or writes, got "reads"`},
		},
		{
			name:  "writes without token",
			admin: "  auth: writes\n",
			want:  []string{"f.yaml:10:9: admin.auth: writes needs admin.token (without a token every route is open, writes included)"},
		},
		{
			name:  "cert without key",
			admin: "  tls:\n    cert_file: " + p.ServerCert + "\n",
			want:  []string{"f.yaml:10:3: admin.tls.key_file is required with admin.tls (the server's PEM certificate and its key)"},
		},
		{
			name:  "empty tls",
			admin: "  tls: {}\n",
			want: []string{
				"f.yaml:10:3: admin.tls.cert_file is required with admin.tls (the server's PEM certificate and its key)",
				"f.yaml:10:3: admin.tls.key_file is required with admin.tls (the server's PEM certificate and its key)",
			},
		},
		{
			name:  "unreadable files",
			admin: "  tls:\n    cert_file: " + missing + "\n    key_file: " + p.ServerKey + "\n    client_ca_file: " + missing + "\n",
			want: []string{
				"f.yaml:11:16: admin.tls.cert_file: open " + missing + ": no such file or directory",
				"f.yaml:13:21: admin.tls.client_ca_file: open " + missing + ": no such file or directory",
			},
		},
		{
			name:  "key of another certificate, CA file without a certificate",
			admin: "  tls:\n    cert_file: " + p.ServerCert + "\n    key_file: " + p.ClientKey + "\n    client_ca_file: " + p.ServerKey + "\n",
			want: []string{
				"f.yaml:11:16: admin.tls: cannot use cert_file " + p.ServerCert + " with key_file " + p.ClientKey + ": tls: private key does not match public key",
				"f.yaml:13:21: admin.tls.client_ca_file: no PEM certificate in " + p.ServerKey,
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(minimal+"admin:\n"+tt.admin))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if want := strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant\n%s", got, want)
			}
			if strings.Contains(got, "PRIVATE KEY") {
				t.Errorf("an error shows key material: %s", got)
			}
		})
	}
}
