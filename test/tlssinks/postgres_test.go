package tlssinks_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/connectd/connectd/test/pki"
)

// pgSink is a postgres sink section on dsn into table, with the apply
// counter verify reads.
func pgSink(dsn, table string) []string {
	return []string{"type: postgres", fmt.Sprintf("dsn: %q", dsn), "table: " + table, "auto_create: true", "test_apply_counter: true"}
}

// TestPostgresOverTLS: one `connectd run` process with two exactly_once
// Kafka → PostgreSQL connectors into a server that takes TLS only, one
// with sslmode=verify-full and the test CA, one with mutual TLS as well
// (clientcert=verify-full), both drained and clean by `connectd verify`;
// and, in the same process, connectors with a wrong CA, sslmode=disable,
// a wrong password and no client certificate for the mutual-TLS role:
// each shows the server and the cause in its status, commits nothing and
// creates no table, and no password shows in the status or the log.
//
// What connectd does with each today is checkBroken's: the sink calls an
// unverifiable certificate abortable and a refusal by the server (no
// pg_hba line for a plaintext connection, a wrong password, a missing
// client certificate: SQLSTATE class 28) fatal, but both meet the claim
// first, which only makes the group rejoin, so both retry every few
// seconds with the connector RUNNING and the cause in the log alone.
func TestPostgresOverTLS(t *testing.T) {
	certs := pki.New(t)
	pg := startTLSPostgres(t, certs)
	p := newPipeline(t)
	otherCA := pki.New(t) // a CA that did not sign the server's certificate

	good := []connector{
		{"pg-verify-full", pgSink(pg.dsn(pgAppUser, pgAppPassword, pgAppUser, nil), "public.events")},
		{"pg-mtls", pgSink(pg.dsn(pgCertUser, pgCertPassword, pgCertUser,
			url.Values{"sslcert": {certs.ClientCert}, "sslkey": {certs.ClientKey}}), "public.events")},
	}
	const wrongPassword = "wrong-pw-3Zt"
	at := fmt.Sprintf("127.0.0.1:%d", pg.port)
	app, cert := "`user=app database=app`: "+at, "`user=client database=client`: "+at
	bad := []broken{
		{connector{"pg-wrong-ca", pgSink(pg.dsn(pgAppUser, pgAppPassword, pgAppUser,
			url.Values{"sslrootcert": {otherCA.CAFile}}), "public.wrong_ca")},
			[]string{"connect to postgres (abortable): TLS: the server's certificate is not signed by the CA in the dsn's sslrootcert", app}},
		{connector{"pg-plaintext", pgSink(pg.dsn(pgAppUser, pgAppPassword, pgAppUser,
			url.Values{"sslmode": {"disable"}}), "public.plaintext")},
			[]string{"connect to postgres (fatal): the server takes this connection only over TLS: set sslmode=verify-full", app, "no encryption"}},
		{connector{"pg-wrong-password", pgSink(pg.dsn(pgAppUser, wrongPassword, pgAppUser, nil), "public.wrong_password")},
			[]string{"connect to postgres (fatal): ", app, `password authentication failed for user "app"`}},
		{connector{"pg-no-client-cert", pgSink(pg.dsn(pgCertUser, pgCertPassword, pgCertUser, nil), "public.no_cert")},
			[]string{"connect to postgres (fatal): the server requires a client certificate for this user: set sslcert and sslkey", cert}},
	}
	p.runGoodAndBroken(good, bad, pgAppPassword, pgCertPassword, wrongPassword)
	// Counted on the server too, apart from verify: every input once.
	for _, db := range []string{pgAppUser, pgCertUser} {
		if n := pg.queryInt(db, "SELECT count(DISTINCT event_id) FROM public.events"); n != inputRecords {
			t.Errorf("database %s: %d distinct event IDs, want %d", db, n, inputRecords)
		}
		if n := pg.queryInt(db, "SELECT count(*) FROM public.events"); n != inputRecords {
			t.Errorf("database %s: %d rows, want %d", db, n, inputRecords)
		}
	}
	for _, b := range bad {
		table := strings.TrimPrefix(b.sink[2], "table: ")
		if n := pg.queryInt(pgAppUser, fmt.Sprintf("SELECT count(*) FROM pg_class WHERE oid = to_regclass('%s')", table)); n != 0 {
			t.Errorf("%s: table %s exists: something got through", b.name, table)
		}
	}
}
