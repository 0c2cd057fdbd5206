package tlssinks_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/test/pki"
)

// Roles of the TLS PostgreSQL server. The mutual-TLS role is named after
// the CN of test/pki's client certificate, which clientcert=verify-full
// compares with the user name.
const (
	pgSuperPassword = "super-7Qx"
	pgAppUser       = "app"
	pgAppPassword   = "app-pw-5Kd"
	pgCertUser      = "client"
	pgCertPassword  = "client-pw-9Wr"
)

// tlsPostgres is a PostgreSQL server of the test's own on a free loopback
// port that takes TCP connections over TLS only (ssl=on and hostssl lines
// alone in pg_hba.conf: a plaintext client has no line to match), with
// passwords (scram-sha-256) for every role and, for pgCertUser, a client
// certificate signed by the test CA as well (clientcert=verify-full).
type tlsPostgres struct {
	t      *testing.T
	bin    string // directory of initdb, pg_ctl
	root   string
	data   string
	log    string
	port   int
	asUser string // run the binaries as this OS user ("" = as ourselves)
	certs  *pki.PKI
}

// startTLSPostgres runs initdb and starts the server with certs' server
// certificate and CA. It needs the PostgreSQL server binaries that `make
// services` installs.
func startTLSPostgres(t *testing.T, certs *pki.PKI) *tlsPostgres {
	t.Helper()
	if testing.Short() {
		t.Skip("starts its own PostgreSQL; skipped with -short")
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		t.Fatal("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): install them with `make services` " +
			"(test/scripts/postgres.sh installs Debian's postgresql-15), or run `go test -short`")
	}
	pg := &tlsPostgres{t: t, bin: filepath.Dir(found[len(found)-1]), port: freePort(t), certs: certs}
	// t.TempDir's parents are 0700 root: the postgres user could not
	// reach a data directory or certificate there.
	var err error
	if pg.root, err = os.MkdirTemp("", "connectd-pgtls-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(pg.root) })
	if err := os.Chmod(pg.root, 0o755); err != nil {
		t.Fatal(err)
	}
	pg.data, pg.log = filepath.Join(pg.root, "data"), filepath.Join(pg.root, "postgres.log")
	pw := filepath.Join(pg.root, "pwfile")
	files := map[string]string{ // the server's copies: it insists on owning its key
		filepath.Join(pg.root, "server.pem"):     certs.ServerCert,
		filepath.Join(pg.root, "server-key.pem"): certs.ServerKey,
		filepath.Join(pg.root, "ca.pem"):         certs.CAFile,
	}
	for dst, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(pw, []byte(pgSuperPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pg.data, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 { // initdb and postgres refuse to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root and no postgres OS user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range append([]string{pg.root, pg.data, pw}, mapKeys(files)...) {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		pg.asUser = "postgres"
	}
	pg.run("initdb", "-D", pg.data, "-U", "postgres", "--pwfile", pw, "-A", "scram-sha-256", "-E", "UTF8", "--no-sync")
	// Only hostssl lines: a plaintext connection matches none and is
	// refused with "no pg_hba.conf entry ... no encryption".
	hba := "hostssl all " + pgCertUser + " 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n" +
		"hostssl all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(pg.data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	if pg.asUser != "" {
		pg.run("chmod", "0600", filepath.Join(pg.data, "pg_hba.conf")) // still readable by its owner
	}
	t.Cleanup(func() {
		_ = pg.ctl("stop", "-m", "immediate")
		if t.Failed() {
			b, _ := os.ReadFile(pg.log)
			t.Logf("TLS PostgreSQL log:\n%s", b)
		}
	})
	if err := pg.ctl("start"); err != nil {
		t.Fatal(err)
	}
	pg.setup()
	t.Logf("TLS PostgreSQL %s on 127.0.0.1:%d", pg.bin, pg.port)
	return pg
}

func mapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// command runs a PostgreSQL binary (or chmod) as pg.asUser if set.
func (pg *tlsPostgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := name
	if name != "chmod" {
		path = filepath.Join(pg.bin, name)
	}
	if pg.asUser != "" {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", pg.asUser, "--", path}, args...)...)
	}
	return exec.CommandContext(ctx, path, args...)
}

func (pg *tlsPostgres) run(name string, args ...string) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := pg.command(ctx, name, args...).CombinedOutput(); err != nil {
		pg.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// ctl runs pg_ctl action with the TLS settings and waits for it.
func (pg *tlsPostgres) ctl(action string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "+
		"-c ssl=on -c ssl_cert_file=%s -c ssl_key_file=%s -c ssl_ca_file=%s",
		pg.port, filepath.Join(pg.root, "server.pem"), filepath.Join(pg.root, "server-key.pem"), filepath.Join(pg.root, "ca.pem"))
	all := append([]string{action, "-D", pg.data, "-w", "-t", "60", "-l", pg.log, "-o", opts}, args...)
	if out, err := pg.command(ctx, "pg_ctl", all...).CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %v: %v\n%s", all, err, out)
	}
	return nil
}

// dsn is a URL DSN for user on database db, verifying the server against
// the test CA, with extra parameters (sslcert, sslkey, or overrides).
func (pg *tlsPostgres) dsn(user, password, db string, extra url.Values) string {
	q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {pg.certs.CAFile}}
	for k, v := range extra {
		q[k] = v
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: fmt.Sprintf("127.0.0.1:%d", pg.port),
		Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}

// setup creates the roles and, for each, a database it owns (so its sink
// creates its tables in the public schema).
func (pg *tlsPostgres) setup() {
	pg.t.Helper()
	for _, r := range []struct{ user, password string }{{pgAppUser, pgAppPassword}, {pgCertUser, pgCertPassword}} {
		pg.exec("postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", pgx.Identifier{r.user}.Sanitize(), r.password))
		pg.exec("postgres", fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{r.user}.Sanitize(), pgx.Identifier{r.user}.Sanitize()))
	}
}

// superuser runs use on a connection to database db as the superuser,
// over TLS, within 30s.
func (pg *tlsPostgres) superuser(db string, use func(context.Context, *pgx.Conn)) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.dsn("postgres", pgSuperPassword, db, nil))
	if err != nil {
		pg.t.Fatalf("connect to the TLS PostgreSQL as postgres: %v", err)
	}
	defer conn.Close(context.Background())
	use(ctx, conn)
}

// exec runs statement q on database db as the superuser, over TLS.
func (pg *tlsPostgres) exec(db, q string) {
	pg.t.Helper()
	pg.superuser(db, func(ctx context.Context, conn *pgx.Conn) {
		if _, err := conn.Exec(ctx, q); err != nil {
			pg.t.Fatalf("%s: %v", q, err)
		}
	})
}

// queryInt runs a one-value query on database db as the superuser.
func (pg *tlsPostgres) queryInt(db, q string) int64 {
	pg.t.Helper()
	var n int64
	pg.superuser(db, func(ctx context.Context, conn *pgx.Conn) {
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			pg.t.Fatalf("%s: %v", q, err)
		}
	})
	return n
}
