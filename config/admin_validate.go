package config

import (
	"crypto/tls"
	"crypto/x509"
	"os"
)

// admin checks the admin API's authentication mode and TLS files. The
// files are read now, at load time, so a wrong path or a key that does not
// match its certificate fails `connectd validate` and the start with the
// setting's position, rather than the first HTTPS handshake. Messages name
// files, never their contents.
func (v *validator) admin(a Admin, top Position) {
	at := v.keyAt("admin", top)
	if v.ok("admin.auth") {
		switch a.Auth {
		case "", AdminAuthAll:
		case AdminAuthWrites:
			if a.Token == "" && v.ok("admin.token") {
				v.add(v.at("admin.auth", at), "admin.auth: writes needs admin.token (without a token every route is open, writes included)")
			}
		default:
			v.add(v.at("admin.auth", at), "admin.auth must be %s or %s, got %q", AdminAuthAll, AdminAuthWrites, a.Auth)
		}
	}
	t := a.TLS
	if t == nil || !v.ok("admin.tls") {
		return
	}
	tlsAt := v.keyAt("admin.tls", at)
	certOK := v.adminFile("admin.tls.cert_file", t.CertFile, tlsAt)
	keyOK := v.adminFile("admin.tls.key_file", t.KeyFile, tlsAt)
	if certOK && keyOK {
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			v.add(v.at("admin.tls.cert_file", tlsAt), "admin.tls: cannot use cert_file %s with key_file %s: %v", t.CertFile, t.KeyFile, err)
		}
	}
	if t.ClientCAFile != "" && v.ok("admin.tls.client_ca_file") {
		pem, err := os.ReadFile(t.ClientCAFile)
		switch {
		case err != nil:
			v.add(v.at("admin.tls.client_ca_file", tlsAt), "admin.tls.client_ca_file: %v", err)
		case !x509.NewCertPool().AppendCertsFromPEM(pem):
			v.add(v.at("admin.tls.client_ca_file", tlsAt), "admin.tls.client_ca_file: no PEM certificate in %s", t.ClientCAFile)
		}
	}
}

// adminFile reports a required TLS file that is not set or not readable,
// and whether it is usable.
func (v *validator) adminFile(path, file string, fallback Position) bool {
	if !v.ok(path) {
		return false
	}
	if file == "" {
		v.add(v.at(path, fallback), "%s is required with admin.tls (the server's PEM certificate and its key)", path)
		return false
	}
	f, err := os.Open(file)
	if err != nil {
		v.add(v.at(path, fallback), "%s: %v", path, err)
		return false
	}
	f.Close()
	return true
}
