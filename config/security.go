package config

// TLS configures a TLS connection: the CA that verifies the server, the
// client's certificate and key for mutual TLS, and the name the server's
// certificate must carry. Files are PEM; write their paths, never their
// contents, so a config file holds no key material.
type TLS struct {
	// Enabled turns TLS on with the system's CAs when no CAFile is given.
	// A tls block with any field set is enabled; `tls: {enabled: true}`
	// alone says "TLS with the system's roots".
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the server's certificate. Empty: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client's certificate and key (mutual
	// TLS); both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked against the server's
	// certificate (default: the host of the address dialed).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate. For a test bench
	// only: the daemon logs a warning at every start while it is set.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// On says whether t asks for TLS: enabled, or any other field set. A nil
// block, `tls: {}` and `tls: {enabled: false}` are off.
func (t *TLS) On() bool {
	return t != nil && (t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify)
}

// SASL configures Kafka authentication.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
	Mechanism string `yaml:"mechanism"`
	// Username and Password for PLAIN and SCRAM. Write the password as
	// ${VAR} or ${file:/path} so it stays out of the file.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Token is OAUTHBEARER's static token; TokenFile is read at every
	// (re)authentication instead, for a token a sidecar refreshes.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// AdminTLS configures the admin API's HTTPS listener.
type AdminTLS struct {
	// CertFile and KeyFile are the server's certificate and key (PEM).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, requires every client to present a
	// certificate signed by it (mutual TLS).
	ClientCAFile string `yaml:"client_ca_file"`
}

// Admin API authentication modes (Admin.Auth).
const (
	// AdminAuthAll requires the token on every route but the probes.
	AdminAuthAll = "all"
	// AdminAuthWrites leaves the read-only routes (GET, HEAD) open and
	// requires the token on every write.
	AdminAuthWrites = "writes"
)
