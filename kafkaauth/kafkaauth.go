// Package kafkaauth turns the kafka.tls and kafka.sasl settings into
// franz-go client options. It is a package of its own so that every place
// that opens a Kafka client from a config (the daemon's pipelines, admin
// transactions routes and offsets API through daemon.ClientOpts, and the
// verify CLI) builds them the same way, and so that config stays free of
// crypto and franz-go imports.
package kafkaauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/connectd/connectd/config"
)

// SASL mechanism names as written in kafka.sasl.mechanism.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	OAuthBearer = "OAUTHBEARER"
)

// Options returns the client options for k's TLS and SASL settings; none
// when neither is set (a plaintext cluster, or the embedded broker). The
// files are read here, once, except an OAUTHBEARER token_file, which is
// read at every authentication so a token refreshed on disk is picked up
// by the next connection. Config validation checks the same things first
// with the file position; these errors are for callers that skip it.
func Options(k config.Kafka) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if TLSOn(k) {
		tc, err := TLSConfig(*k.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if k.SASL != nil {
		m, err := Mechanism(*k.SASL)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// TLSOn says whether k asks for TLS: a tls block with enabled: true or any
// other field set (config.TLS); `tls: {enabled: false}` or `tls: {}` is off.
func TLSOn(k config.Kafka) bool { return k.TLS.On() }

// TLSConfig builds the client TLS configuration: the CA pool from CAFile
// (the system's roots when empty), the client certificate for mutual TLS,
// the server name, and TLS 1.2 at least. franz-go fills ServerName from
// the host of each broker dialed when it is empty, so every broker of the
// cluster is checked against its own name.
func TLSConfig(t config.TLS) (*tls.Config, error) { return TLSConfigAt(t, "kafka.tls") }

// TLSConfigAt is TLSConfig for a tls block written at path ("kafka.tls",
// or a sink's "tls"), which its errors and warning name; the Redis sink
// builds its connections' TLS here too, so both read files and check
// them the same way.
func TLSConfigAt(t config.TLS, path string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", path, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file %s: no PEM certificate in it", path, t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, fmt.Errorf("%s: cert_file and key_file go together (mutual TLS needs both)", path)
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s cert_file %s / key_file %s: %w", path, t.CertFile, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if t.InsecureSkipVerify {
		// Loud on purpose: with this set anyone on the path can read and
		// alter every record and credential, and nothing else says so.
		slog.Warn(path + ".insecure_skip_verify is set: the servers' certificates are NOT verified, so the connection is open to interception; use it on a test bench only")
		tc.InsecureSkipVerify = true
	}
	return tc, nil
}

// Mechanism returns franz-go's SASL mechanism for s.
func Mechanism(s config.SASL) (sasl.Mechanism, error) {
	switch s.Mechanism {
	case Plain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil
	case ScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil
	case ScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil
	case OAuthBearer:
		if s.TokenFile == "" {
			return oauth.Auth{Token: s.Token}.AsMechanism(), nil
		}
		file := s.TokenFile
		return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
			b, err := os.ReadFile(file)
			if err != nil {
				return oauth.Auth{}, fmt.Errorf("kafka.sasl.token_file: %w", err)
			}
			tok := strings.TrimSpace(string(b))
			if tok == "" {
				return oauth.Auth{}, fmt.Errorf("kafka.sasl.token_file %s is empty", file)
			}
			return oauth.Auth{Token: tok}, nil
		}), nil
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism %q: want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER", s.Mechanism)
}
