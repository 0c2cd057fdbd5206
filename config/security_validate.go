package config

import (
	"os"
)

// saslMechanisms are the kafka.sasl mechanisms connectd builds through
// franz-go's sasl packages (package kafkaauth).
var saslMechanisms = map[string]bool{"PLAIN": true, "SCRAM-SHA-256": true, "SCRAM-SHA-512": true, "OAUTHBEARER": true}

// kafkaSecurity checks kafka.tls and kafka.sasl, at is the kafka section's
// position. Files are opened here so a wrong path fails the start (and
// `connectd validate`) with its position instead of at the first
// connection; they are opened again when the clients are built.
func (v *validator) kafkaSecurity(k Kafka, at Position) {
	if k.Embedded != nil && v.ok("kafka.embedded") {
		for _, p := range []struct {
			path string
			set  bool
		}{{"kafka.tls", k.TLS != nil}, {"kafka.sasl", k.SASL != nil}} {
			if p.set {
				v.add(v.keyAt(p.path, at), "%s: the embedded broker speaks plaintext only; remove %s or use brokers", p.path, p.path)
			}
		}
	}
	if t := k.TLS; t != nil && v.ok("kafka.tls") {
		tat := v.keyAt("kafka.tls", at)
		v.readable("kafka.tls.ca_file", t.CAFile, tat)
		switch {
		case !v.ok("kafka.tls.cert_file") || !v.ok("kafka.tls.key_file"):
		case t.CertFile != "" && t.KeyFile == "":
			v.add(v.at("kafka.tls.cert_file", tat), "kafka.tls: cert_file needs key_file (mutual TLS takes both)")
		case t.CertFile == "" && t.KeyFile != "":
			v.add(v.at("kafka.tls.key_file", tat), "kafka.tls: key_file needs cert_file (mutual TLS takes both)")
		default:
			v.readable("kafka.tls.cert_file", t.CertFile, tat)
			v.readable("kafka.tls.key_file", t.KeyFile, tat)
		}
	}
	s := k.SASL
	if s == nil || !v.ok("kafka.sasl") {
		return
	}
	sat := v.keyAt("kafka.sasl", at)
	mat := v.at("kafka.sasl.mechanism", sat)
	switch {
	case !v.ok("kafka.sasl.mechanism"):
	case s.Mechanism == "":
		v.add(sat, "kafka.sasl.mechanism is required: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
	case !saslMechanisms[s.Mechanism]:
		v.add(mat, "kafka.sasl.mechanism %q: want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER", s.Mechanism)
	case s.Mechanism == "OAUTHBEARER":
		switch {
		case s.Token != "" && s.TokenFile != "":
			v.add(v.keyAt("kafka.sasl.token_file", sat), "kafka.sasl: set token or token_file, not both")
		case s.Token == "" && s.TokenFile == "":
			v.add(sat, "kafka.sasl: OAUTHBEARER needs token or token_file")
		case s.TokenFile != "":
			v.readable("kafka.sasl.token_file", s.TokenFile, sat)
		}
		for _, f := range []struct{ path, val string }{{"kafka.sasl.username", s.Username}, {"kafka.sasl.password", s.Password}} {
			if f.val != "" {
				v.add(v.keyAt(f.path, sat), "%s: OAUTHBEARER takes token or token_file, not a username or password", f.path)
			}
		}
	default:
		if s.Username == "" && v.ok("kafka.sasl.username") {
			v.add(v.keyAt("kafka.sasl.username", sat), "kafka.sasl.username is required for %s", s.Mechanism)
		}
		if s.Password == "" && v.ok("kafka.sasl.password") {
			// The value is never printed: it may be a secret that
			// expanded to nothing.
			v.add(v.keyAt("kafka.sasl.password", sat), "kafka.sasl.password is required for %s (empty, or an unset ${VAR})", s.Mechanism)
		}
		for _, f := range []struct{ path, val string }{{"kafka.sasl.token", s.Token}, {"kafka.sasl.token_file", s.TokenFile}} {
			if f.val != "" {
				v.add(v.keyAt(f.path, sat), "%s is for OAUTHBEARER, not %s", f.path, s.Mechanism)
			}
		}
	}
}

// readable reports a set file path that cannot be opened for reading.
func (v *validator) readable(path, file string, fallback Position) {
	if file == "" || !v.ok(path) {
		return
	}
	f, err := os.Open(file)
	if err != nil {
		v.add(v.at(path, fallback), "%s: %v", path, err)
		return
	}
	f.Close()
}
