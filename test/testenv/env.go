// Package testenv gives integration tests their own isolated pieces of the real
// services `make services` starts (Kafka topics, a PostgreSQL database, a Redis
// key prefix) and starts throwaway Kafka, PostgreSQL and Redis containers from
// the images `make images` builds, for fault tests that pause or kill them.
//
// Services are found through KAFKA_BROKERS, PG_DSN and REDIS_ADDR, whose
// defaults are where `make services` starts them. A test that needs a service
// that is not there fails with a message naming the make target; only
// `go test -short` skips such tests.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// Environment variables naming the services, and their defaults (which match
// test/scripts/*.sh).
const (
	EnvKafkaBrokers        = "KAFKA_BROKERS"
	EnvKafkaClusterBrokers = "KAFKA_CLUSTER_BROKERS"
	EnvPostgresDSN         = "PG_DSN"
	EnvRedisAddr           = "REDIS_ADDR"

	DefaultKafkaBrokers        = "127.0.0.1:9192"
	DefaultKafkaClusterBrokers = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
	DefaultPostgresDSN         = "postgres://connectd:connectd@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultRedisAddr           = "127.0.0.1:6379"
)

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// needService is called first by every helper that needs a service: under
// -short the test is skipped (the short suite needs no services); otherwise
// the helper goes on and fails the test if the service is missing.
func needService(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s; skipped with -short", what)
	}
}

// missing fails the test because a service is unreachable, saying how to
// start it. It never skips: a missing service is a broken setup, not a pass.
func missing(t testing.TB, what, where, target string, err error) {
	t.Helper()
	t.Fatalf("%s is not reachable at %s: %v\nstart it with `make %s` (or point the test elsewhere, see test/testenv), or run `go test -short` to skip service tests",
		what, where, err, target)
}

// UniqueName returns prefix + a form of the test's name + a random suffix,
// using only [a-z0-9_-] and at most maxLen bytes, so it is a valid Kafka topic,
// PostgreSQL database and Redis key fragment. sep joins the parts.
func UniqueName(t testing.TB, prefix, sep string, maxLen int) string {
	var b strings.Builder
	last := rune(0)
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		default:
			r = '_'
		}
		if r == '_' && last == '_' {
			continue
		}
		b.WriteRune(r)
		last = r
	}
	suffix := randomHex(4)
	name := strings.Trim(b.String(), "_")
	if room := maxLen - len(prefix) - len(suffix) - 2*len(sep); len(name) > room {
		name = name[:max(room, 0)]
	}
	return prefix + sep + name + sep + suffix
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
