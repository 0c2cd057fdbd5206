package tlssinks_test

import (
	"fmt"
	"testing"

	"github.com/connectd/connectd/test/pki"
)

// redisSink is a redis sink section on url under prefix with tls lines
// (indented under "tls:"; none: no tls block), with the audit log and
// apply counters verify reads.
func redisSink(url, prefix string, tls ...string) []string {
	lines := []string{"type: redis", fmt.Sprintf("url: %q", url), fmt.Sprintf("key_prefix: %q", prefix),
		"audit_log: true", "test_apply_counter: true"}
	if len(tls) > 0 {
		lines = append(lines, "tls:")
		for _, l := range tls {
			lines = append(lines, "  "+l)
		}
	}
	return lines
}

// TestRedisOverTLS: one `connectd run` process with two exactly_once
// Kafka → Redis connectors into a redis-server that has only a TLS port
// and requires client certificates, logged in as an ACL user named in the
// URL (the default user is off): one with the tls block's files, one with
// a rediss:// URL and server_name "localhost" (dialing 127.0.0.1), both
// drained and clean by `connectd verify`; and, in the same process,
// connectors with a wrong CA, no TLS, no client certificate, a server name
// the certificate does not carry and a wrong password: each names the
// server and the cause (checkBroken: RUNNING, retrying, cause in the log)
// and writes no key, and no password shows in the status or the log.
func TestRedisOverTLS(t *testing.T) {
	certs := pki.New(t)
	srv := startTLSRedis(t, certs)
	p := newPipeline(t)
	otherCA := pki.New(t)

	ca, cert, key := "ca_file: "+certs.CAFile, "cert_file: "+certs.ClientCert, "key_file: "+certs.ClientKey
	good := []connector{
		{"redis-tls", redisSink(srv.url(redisUser, redisPassword), "tls:", ca, cert, key)},
		{"redis-rediss", redisSink("rediss://"+redisUser+":"+redisPassword+"@"+srv.addr+"/0", "rediss:",
			ca, cert, key, "server_name: localhost")},
	}
	const wrongPassword = "wrong-pw-8Lp"
	at := "connect to redis (abortable): redis sink: loading scripts: redis " + srv.addr + ": "
	bad := []broken{
		{connector{"redis-wrong-ca", redisSink(srv.url(redisUser, redisPassword), "wrong-ca:", "ca_file: "+otherCA.CAFile, cert, key)},
			[]string{at + "TLS: the server's certificate is not signed by a CA in tls.ca_file", "x509: certificate signed by unknown authority"}},
		{connector{"redis-plaintext", redisSink(srv.url(redisUser, redisPassword), "plaintext:")},
			[]string{at + "the server closed the connection at the first command: it most likely requires TLS"}},
		{connector{"redis-no-client-cert", redisSink(srv.url(redisUser, redisPassword), "no-cert:", ca)},
			[]string{at + "TLS: the server requires a client certificate (set tls.cert_file and tls.key_file)", "certificate required"}},
		{connector{"redis-wrong-name", redisSink(srv.url(redisUser, redisPassword), "wrong-name:", ca, cert, key, "server_name: other.example")},
			[]string{at + `TLS: the server's certificate is not valid for "other.example" (set tls.server_name`}},
		{connector{"redis-wrong-password", redisSink(srv.url(redisUser, wrongPassword), "wrong-password:", ca, cert, key)},
			[]string{at + "authentication refused: wrong username or password", "WRONGPASS"}},
	}
	p.runGoodAndBroken(good, bad, redisPassword, wrongPassword)
	for _, b := range bad {
		prefix := b.name[len("redis-"):] + ":"
		if n := srv.keys(prefix); n != 0 {
			t.Errorf("%s: %d keys under %s: something got through", b.name, n, prefix)
		}
	}
}
