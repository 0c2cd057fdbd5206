package process_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// privatePostgres is a PostgreSQL server of the test's own (initdb into a
// temporary directory, trust auth, 127.0.0.1 only, a free port), so the
// test can restart and crash it without touching the shared one.
type privatePostgres struct {
	t       *testing.T
	bin     string // directory of initdb, pg_ctl
	data    string
	logFile string
	port    int
	asUser  string // run the binaries as this OS user ("" = as ourselves)
}

// startPrivatePostgres needs the PostgreSQL server binaries that `make
// services` installs (/usr/lib/postgresql/*/bin).
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL server binaries (skipped with -short)")
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		t.Fatal("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): run `make services`")
	}
	pg := &privatePostgres{t: t, bin: filepath.Dir(found[len(found)-1])}
	// t.TempDir's parents are 0700 root: the postgres user could not
	// reach a data directory there.
	root, err := os.MkdirTemp("", "connectd-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	pg.data, pg.logFile = filepath.Join(root, "data"), filepath.Join(root, "postgres.log")
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
		for _, p := range []string{root, pg.data} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		pg.asUser = "postgres"
	}
	pg.port = freePort(t)
	pg.run(2*time.Minute, "initdb", "-D", pg.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
	t.Cleanup(func() {
		_ = pg.ctl(time.Minute, "stop", "-m", "immediate")
		if t.Failed() {
			b, _ := os.ReadFile(pg.logFile)
			t.Logf("private PostgreSQL log:\n%s", b)
		}
	})
	pg.mustCtl("start")
	t.Logf("private PostgreSQL %s on 127.0.0.1:%d, data %s", pg.bin, pg.port, pg.data)
	return pg
}

// freePort is a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// command runs a PostgreSQL binary, as pg.asUser if set.
func (pg *privatePostgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(pg.bin, name)
	if pg.asUser != "" {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", pg.asUser, "--", path}, args...)...)
	}
	return exec.CommandContext(ctx, path, args...)
}

func (pg *privatePostgres) run(within time.Duration, name string, args ...string) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if out, err := pg.command(ctx, name, args...).CombinedOutput(); err != nil {
		pg.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// ctl runs pg_ctl action (start, stop, restart) and waits for it.
func (pg *privatePostgres) ctl(within time.Duration, action string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off", pg.port)
	all := append([]string{action, "-D", pg.data, "-w", "-t", "60", "-l", pg.logFile, "-o", opts}, args...)
	out, err := pg.command(ctx, "pg_ctl", all...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %v\n%s", all, err, out)
	}
	return nil
}

func (pg *privatePostgres) mustCtl(action string, args ...string) {
	pg.t.Helper()
	if err := pg.ctl(2*time.Minute, action, args...); err != nil {
		pg.t.Fatal(err)
	}
}

// dsn is the server's postgres database, as the postgres superuser.
func (pg *privatePostgres) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// terminateBackends ends every other backend of the postgres database
// (pg_terminate_backend): the connector's connections, mid-batch or idle.
func (pg *privatePostgres) terminateBackends() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.dsn())
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend') s`).Scan(&n)
	return n, err
}

// TestPostgresRestartMidStream: an exactly_once Kafka → PostgreSQL
// connector keeps running while its (private) PostgreSQL has its backends
// terminated, is restarted (pg_ctl restart -m fast), and crashes (-m
// immediate, crash recovery on start): it recovers by itself, drains the
// input, and verify is clean with every apply counter at 1.
func TestPostgresRestartMidStream(t *testing.T) {
	t.Parallel()
	pg := startPrivatePostgres(t)
	p := newPipe(t)
	cfg := p.writeConfig(connectorConfig{
		guarantee:          "exactly_once",
		commitInterval:     "100ms",
		transactionTimeout: "30s",
		sessionTimeout:     "6s",
		shutdownTimeout:    "10s",
		sink:               postgresSink(pg.dsn()),
	})
	start := time.Now()
	const pre = 10_000
	p.produce(0, pre)
	in := p.startStream(pre, 1000)
	inst := startInstance(t, cfg, p.instanceID("pg"))
	step := 4_000
	at := p.waitCommitted(pre, 2*time.Minute, inst)
	for i, hurt := range []struct {
		name string
		do   func() error
	}{
		{"pg_terminate_backend", func() error {
			n, err := pg.terminateBackends()
			t.Logf("terminated %d backends", n)
			return err
		}},
		{"pg_ctl restart -m fast", func() error { return pg.ctl(2*time.Minute, "restart", "-m", "fast") }},
		{"pg_ctl restart -m immediate (crash)", func() error { return pg.ctl(2*time.Minute, "restart", "-m", "immediate") }},
		{"pg_ctl restart -m fast", func() error { return pg.ctl(2*time.Minute, "restart", "-m", "fast") }},
	} {
		before := inst.mustStatus(connectorName)
		t0 := time.Now()
		if err := hurt.do(); err != nil {
			t.Fatalf("%s: %v", hurt.name, err)
		}
		t.Logf("%.1fs: %s took %v (%d committed before, %d produced)", time.Since(start).Seconds(), hurt.name,
			time.Since(t0).Round(time.Millisecond), at, in.produced())
		at = p.waitCommitted(at+step, 2*time.Minute, inst)
		after := inst.mustStatus(connectorName)
		t.Logf("%.1fs: recovered from %s (%d): %d committed; aborts %v -> %v, state %s",
			time.Since(start).Seconds(), hurt.name, i+1, at, before.Aborts, after.Aborts, after.Connector.State)
	}
	total := in.stop(t)
	p.waitDrained(total, 3*time.Minute, inst)
	st := inst.mustStatus(connectorName)
	if st.Connector.State != "RUNNING" {
		t.Errorf("connector state %s after recovering, want RUNNING (%s)", st.Connector.State, st)
	}
	t.Logf("drained %d events in %.1fs; status %s", total, time.Since(start).Seconds(), st)
	inst.kill(syscall.SIGTERM)
	if code := inst.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	rep := verifyClean(t, cfg, connectorName, total)
	t.Logf("%d events across backend termination, two restarts and a crash of PostgreSQL: %s", total, rep)
}
