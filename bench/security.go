package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/kafkaauth"
)

// KafkaSecurity is how the harness and the connectd processes it starts
// reach Kafka (issue 20: the cost of SASL_SSL). The zero value is
// plaintext. The harness's own clients (pre-load, live traffic, output
// reads, admin, clean-up) get it through kafkaauth.Options, the code
// connectd itself uses, and the generated connectd configs carry it as
// kafka.tls and kafka.sasl, so both sides of a measurement pay the same
// handshake and encryption.
type KafkaSecurity struct {
	TLS  *config.TLS
	SASL *config.SASL
	// PasswordFile is where SASL.Password was read from. Generated
	// configs name it as ${file:...} instead of holding the password, so
	// no secret lands in the work directory, the report or its command
	// line.
	PasswordFile string
	// Desc is what the report's header says; a report rendered again
	// from its JSON has only this.
	Desc string
}

// On says whether anything is secured.
func (s KafkaSecurity) On() bool { return s.TLS.On() || s.SASL != nil }

// String is the report's description: "plaintext" when nothing is set.
func (s KafkaSecurity) String() string {
	if s.Desc != "" {
		return s.Desc
	}
	return "plaintext"
}

// parseKafkaSecurity builds the harness's security from its flags:
// tlsDir holds ca.pem and, for mutual TLS, client.pem and client-key.pem
// (the names test/pki writes); saslSpec is MECHANISM:USER, whose
// password is the content of passwordFile (one trailing newline removed,
// as connectd's ${file:} does). All empty is plaintext. The files are
// read once here (kafkaauth.Options), so a bad one fails before any run.
func parseKafkaSecurity(tlsDir, saslSpec, passwordFile string) (KafkaSecurity, error) {
	var s KafkaSecurity
	var desc []string
	if tlsDir != "" {
		dir, err := filepath.Abs(tlsDir)
		if err != nil {
			return s, fmt.Errorf("-kafka-tls-dir: %w", err)
		}
		s.TLS = &config.TLS{Enabled: true, CAFile: filepath.Join(dir, "ca.pem")}
		cert, key := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
		_, certErr := os.Stat(cert)
		_, keyErr := os.Stat(key)
		switch {
		case certErr == nil && keyErr == nil:
			s.TLS.CertFile, s.TLS.KeyFile = cert, key
			desc = append(desc, "mutual TLS")
		case certErr == nil || keyErr == nil:
			return s, fmt.Errorf("-kafka-tls-dir %s: client.pem and client-key.pem go together (mutual TLS needs both)", dir)
		default:
			desc = append(desc, "TLS (no client certificate)")
		}
	}
	switch {
	case saslSpec != "":
		mech, user, ok := strings.Cut(saslSpec, ":")
		if !ok || mech == "" || user == "" {
			return s, fmt.Errorf("-kafka-sasl %q: want MECHANISM:USER (the password comes from -kafka-sasl-password-file)", saslSpec)
		}
		if mech != kafkaauth.Plain && mech != kafkaauth.ScramSHA256 && mech != kafkaauth.ScramSHA512 {
			return s, fmt.Errorf("-kafka-sasl %q: mechanism %s: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", saslSpec, mech)
		}
		if passwordFile == "" {
			return s, fmt.Errorf("-kafka-sasl %s needs -kafka-sasl-password-file", saslSpec)
		}
		abs, err := filepath.Abs(passwordFile)
		if err != nil {
			return s, fmt.Errorf("-kafka-sasl-password-file: %w", err)
		}
		b, err := os.ReadFile(abs)
		if err != nil {
			return s, fmt.Errorf("-kafka-sasl-password-file: %w", err)
		}
		s.SASL = &config.SASL{Mechanism: mech, Username: user, Password: strings.TrimSuffix(string(b), "\n")}
		s.PasswordFile = abs
		desc = append([]string{fmt.Sprintf("SASL %s as %q", mech, user)}, desc...)
	case passwordFile != "":
		return s, fmt.Errorf("-kafka-sasl-password-file without -kafka-sasl MECHANISM:USER")
	}
	if !s.On() {
		return s, nil
	}
	proto := map[[2]bool]string{{true, true}: "SASL_SSL", {true, false}: "SSL", {false, true}: "SASL_PLAINTEXT"}[[2]bool{s.TLS.On(), s.SASL != nil}]
	s.Desc = proto + ": " + strings.Join(desc, ", ")
	if _, err := s.clientOpts(); err != nil {
		return s, err
	}
	return s, nil
}

// clientOpts are the franz-go options of every client the harness opens.
func (s KafkaSecurity) clientOpts() ([]kgo.Opt, error) {
	return kafkaauth.Options(config.Kafka{TLS: s.TLS, SASL: s.SASL})
}

// render writes the kafka.tls and kafka.sasl blocks of a generated config
// (indented under kafka:), nothing for plaintext. The password is the
// ${file:} reference, never its value.
func (s KafkaSecurity) render(w func(string, ...any)) {
	if s.TLS.On() {
		w("  tls:")
		w("    ca_file: %q", s.TLS.CAFile)
		if s.TLS.CertFile != "" {
			w("    cert_file: %q", s.TLS.CertFile)
			w("    key_file: %q", s.TLS.KeyFile)
		}
	}
	if s.SASL != nil {
		w("  sasl:")
		w("    mechanism: %s", s.SASL.Mechanism)
		w("    username: %q", s.SASL.Username)
		w("    password: %q", "${file:"+s.PasswordFile+"}")
	}
}

// refusePeers says which selected scenarios cannot run against a secured
// Kafka: only connectd's are given the settings (the bare loops, Kafka
// Streams and TransactionalMessageCopier are started with -brokers alone),
// so the comparison is connectd over the secured listener against
// connectd over plaintext.
func refusePeers(scs []Scenario, s KafkaSecurity) error {
	if !s.On() {
		return nil
	}
	for _, sc := range scs {
		if sc.System != Connectd {
			return fmt.Errorf("%q cannot run against a secured Kafka (%s): only connectd scenarios get the TLS/SASL settings; add -no-peers or narrow -only", sc.Name(), s)
		}
	}
	return nil
}
