// Package kafkasecure_test runs connectd against a real Apache Kafka broker
// with a SASL_SSL listener (SCRAM-SHA-512 and mutual TLS), which
// test/scripts/kafka.sh starts in its `secure` mode with certificates
// test/pki makes afresh for each run.
//
// kafkaauth and cmd/connectd's TestRunSASLSSL test the same settings
// against kfake, whose TLS is Go's crypto/tls and whose SASL is franz-go's
// own. This package is what shows that the Java broker's TLS stack accepts
// franz-go's handshake and PEM-loaded ECDSA certificates, that its SCRAM
// exchange and the transactions of an exactly_once connector work over
// them, and that kafkaauth.Check still names the cause when it is a real
// broker that refuses: Java closes connections at other moments than kfake.
//
// It is a package of its own because it owns a broker: it stops and starts
// the secure node (never the shared broker of `make services`), so two runs
// of it at the same time on one machine would stomp on each other.
package kafkasecure_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/kafkaauth"
	"github.com/connectd/connectd/test/pki"
	"github.com/connectd/connectd/test/testenv"
	"github.com/connectd/connectd/verify"
)

var connectd = testenv.ConnectdBinary("connectd-kafkasecure-")

func TestMain(m *testing.M) {
	code := m.Run()
	connectd.Remove()
	os.Exit(code)
}

// The SCRAM credentials kafka.sh writes at format time
// (KAFKA_SECURE_USER, KAFKA_SECURE_PASSWORD); the test sets both.
const (
	user     = "connectd"
	password = "s3cret-over-tls"
)

// secureKafka is the running secure node: its PLAINTEXT address, for the
// test's own bookkeeping (topics, offsets, end offsets), and its SASL_SSL
// address, the only one connectd is given.
type secureKafka struct {
	plain, tls string
	adm        *kadm.Client
}

// TestSASLSSLRealKafka starts the secure node with mutual TLS required,
// shows that each security mistake stops `connectd run` at once with the
// broker and the cause named and nothing written, then runs a Kafka → Kafka
// exactly_once connector over SCRAM-SHA-512 and mutual TLS while records
// are fed in, and checks with `connectd verify` that each is there once.
// Last, the node is restarted with an expired server certificate, which
// must stop `connectd run` the same way.
func TestSASLSSLRealKafka(t *testing.T) {
	needKafka(t)
	bin := connectd.Path(t)
	certs := pki.New(t)
	k := startSecureKafka(t, certs)
	dir := t.TempDir()
	in, out := createTopics(t, k, 3)
	group := testenv.UniqueName(t, "g", "-", 100)

	// Records already waiting when each failed start happens, so that a
	// start that got through would have something to copy.
	const before = 1000
	feeder := newFeeder(t, k.tls, certs, in)
	feeder.produce(t, before)

	other := pki.New(t) // a CA the broker's certificate is not signed by
	good := tlsBlock{ca: certs.CAFile, cert: certs.ClientCert, key: certs.ClientKey}
	sslAddr := k.tls
	cases := []struct {
		name string
		cfg  secureConfig
		want string
	}{
		{"wrong password", secureConfig{tls: &good, password: "not-" + password},
			`SASL SCRAM-SHA-512 authentication as user "connectd" refused: wrong username, password or token`},
		{"wrong CA", secureConfig{tls: &tlsBlock{ca: other.CAFile, cert: certs.ClientCert, key: certs.ClientKey}, password: password},
			"TLS: the broker's certificate is not signed by a CA in kafka.tls.ca_file"},
		{"expired client certificate", secureConfig{tls: &tlsBlock{ca: certs.CAFile, cert: certs.ExpiredClientCert, key: certs.ExpiredClientKey}, password: password},
			"TLS: the broker rejected our client certificate, which expired at"},
		{"no client certificate", secureConfig{tls: &tlsBlock{ca: certs.CAFile}, password: password},
			"TLS: the broker requires a client certificate (set kafka.tls.cert_file and key_file)"},
		// The cause must say that the listener wants TLS and kafka.tls
		// is missing; against kfake it is "the broker closed the
		// connection at the first request: it most likely requires TLS,
		// and kafka.tls is not set".
		{"plaintext client against the TLS port", secureConfig{password: password}, "kafka.tls is not set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.brokers, c.cfg.in, c.cfg.out, c.cfg.group = sslAddr, in, out, group
			path := writeConfig(t, dir, strings.ReplaceAll(c.name, " ", "-")+".yaml", c.cfg)
			refusedAtStart(t, bin, path, sslAddr, c.want)
			nothingWritten(t, k, out, group)
		})
	}

	// The broker enables SCRAM-SHA-256 too (kafka.sh writes the user's
	// credentials for both); the connector below uses SCRAM-SHA-512.
	t.Run("SCRAM-SHA-256 login", func(t *testing.T) {
		kc := config.Kafka{
			TLS:  &config.TLS{CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey},
			SASL: &config.SASL{Mechanism: "SCRAM-SHA-256", Username: user, Password: password},
		}
		opts, err := kafkaauth.Options(kc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := kafkaauth.Check(ctx, []string{sslAddr}, opts, kc); err != nil {
			t.Errorf("SCRAM-SHA-256 over TLS: %v", err)
		}
	})

	// OAUTHBEARER against Kafka's validator of unsecured JWTs (alg
	// none): the token file connectd re-reads at each authentication,
	// accepted while valid; an expired token refused with a clear cause.
	t.Run("OAUTHBEARER login", func(t *testing.T) {
		check := func(exp time.Time) error {
			file := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(file, []byte(unsecuredJWT(user, exp)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			kc := config.Kafka{
				TLS:  &config.TLS{CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey},
				SASL: &config.SASL{Mechanism: "OAUTHBEARER", TokenFile: file},
			}
			opts, err := kafkaauth.Options(kc)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return kafkaauth.Check(ctx, []string{sslAddr}, opts, kc)
		}
		if err := check(time.Now().Add(time.Hour)); err != nil {
			t.Errorf("a valid token: %v", err)
		}
		err := check(time.Now().Add(-time.Hour))
		if !errors.Is(err, kafkaauth.ErrSecurity) || !strings.Contains(err.Error(), "kafka broker "+sslAddr+": ") || !strings.Contains(err.Error(), "OAUTHBEARER") {
			t.Errorf("an expired token: %v, want a security error naming the broker and OAUTHBEARER", err)
		}
		t.Logf("expired token: %v", err)
	})

	t.Run("exactly_once over SASL_SSL", func(t *testing.T) {
		path := writeConfig(t, dir, "good.yaml", secureConfig{brokers: sslAddr, tls: &good, password: password, in: in, out: out, group: group})
		p := testenv.NewProcess(t, bin, path, filepath.Join(dir, "good.log"), testenv.UniqueName(t, "i", "-", 60), testenv.ProcessOptions{})
		p.SetEnv(passwordEnv(t, path)...)
		start := time.Now()
		p.Start()
		// Fed while the connector runs, until it has committed while
		// more records were still to come: at least 20,000 records
		// after the start, and until one commit was seen between
		// two chunks.
		const atLeast, chunk = 20_000, 1000
		fed, sawCommit := 0, false
		for fed < atLeast || !sawCommit {
			if time.Since(start) > 2*time.Minute {
				t.Fatalf("no commit seen in 2 minutes while feeding %d records\n%s", fed, p.LogTail(40))
			}
			feeder.produce(t, chunk)
			fed += chunk
			p.Alive()
			if !sawCommit {
				if c := committed(t, k, group, in); c > 0 {
					sawCommit = true
					t.Logf("first commit seen with %d of %d records fed committed", c, before+fed)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		total := before + fed
		waitCommitted(t, k, group, in, int64(total), p)
		t.Logf("%d records copied exactly_once over SASL_SSL in %v", total, time.Since(start).Round(time.Millisecond))
		p.Signal(syscall.SIGTERM)
		if code := p.WaitExit(30 * time.Second); code != 0 {
			t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, p.LogTail(40))
		}
		rep := verifyStopped(t, bin, path)
		if rep.Expected != total || rep.Actual != total || rep.Duplicates != 0 || rep.Missing != 0 || rep.Unexpected != 0 {
			t.Errorf("verify: expected %d actual %d duplicates %d missing %d unexpected %d, want %d, %d, 0, 0, 0",
				rep.Expected, rep.Actual, rep.Duplicates, rep.Missing, rep.Unexpected, total, total)
		}
	})

	t.Run("expired server certificate", func(t *testing.T) {
		expired := pki.NewExpired(t)
		k := startSecureKafka(t, expired) // a fresh metadata log: new topics
		in, out := createTopics(t, k, 1)
		newFeeder(t, k.plain, nil, in).produce(t, 100)
		path := writeConfig(t, dir, "expired.yaml", secureConfig{
			brokers: k.tls, in: in, out: out, group: group, password: password,
			tls: &tlsBlock{ca: expired.CAFile, cert: expired.ClientCert, key: expired.ClientKey},
		})
		refusedAtStart(t, bin, path, k.tls, "TLS: the broker's certificate has expired or is not yet valid")
		nothingWritten(t, k, out, group)
	})
}

// unsecuredJWT is an unsigned JWT (alg none) for subject sub expiring at
// exp, which Kafka's default OAUTHBEARER validator accepts; production
// tokens come from an identity provider.
func unsecuredJWT(sub string, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"none"}`))
	claims := enc(fmt.Appendf(nil, `{"sub":%q,"iat":%d,"exp":%d}`, sub, time.Now().Add(-2*time.Hour).Unix(), exp.Unix()))
	return header + "." + claims + "."
}

// needKafka skips with -short and fails, saying how to install them,
// when Java or Kafka's jars are missing: the test starts its own broker
// from them, so a running `make services` is not enough.
func needKafka(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Kafka broker with a SASL_SSL listener; skipped with -short")
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatalf("java not found (%v): install it with `apt-get install openjdk-17-jre-headless` (or `make services`), or run `go test -short`", err)
	}
	if _, err := os.Stat(filepath.Join(kafkaHome(), ".complete")); err != nil {
		t.Fatalf("Kafka's jars are not in %s (%v): fetch them with `make kafka-jars`, or run `go test -short`", kafkaHome(), err)
	}
}

// kafkaHome is where test/scripts/kafka-jars.sh puts the jars, by the
// same variables and defaults as test/scripts/lib.sh.
func kafkaHome() string {
	cache := os.Getenv("CONNECTD_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "connectd")
	}
	version := os.Getenv("KAFKA_VERSION")
	if version == "" {
		version = "4.1.1"
	}
	return filepath.Join(cache, "kafka-"+version)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// kafkaScript runs test/scripts/kafka.sh with args and env added.
func kafkaScript(env []string, args ...string) error {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(filepath.Dir(file)), "scripts", "kafka.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kafka.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// startSecureKafka (re)starts the secure node with certs' server
// certificate and CA, mutual TLS required and the test's SCRAM user, and
// stops it when the test ends. A node left running by an earlier run is
// stopped first: it would carry that run's certificates.
func startSecureKafka(t *testing.T, certs *pki.PKI) *secureKafka {
	t.Helper()
	env := []string{
		"KAFKA_SECURE_TLS_DIR=" + filepath.Dir(certs.CAFile),
		"KAFKA_SECURE_CLIENT_AUTH=required",
		"KAFKA_SECURE_USER=" + user,
		"KAFKA_SECURE_PASSWORD=" + password,
	}
	if err := kafkaScript(nil, "stop", "secure"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := kafkaScript(env, "start", "secure"); err != nil {
		t.Fatal(err)
	}
	t.Logf("secure Kafka node started in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := kafkaScript(nil, "stop", "secure"); err != nil {
			t.Error(err)
		}
	})
	k := &secureKafka{
		plain: "127.0.0.1:" + envOr("KAFKA_SECURE_PORT", "9392"),
		tls:   "127.0.0.1:" + envOr("KAFKA_SECURE_SSL_PORT", "9393"),
	}
	k.adm = kadm.NewClient(testenv.KafkaClient(t, []string{k.plain}))
	return k
}

// createTopics makes the input and output topics through the PLAINTEXT
// listener; the node's data dir is fresh at each start, so nothing else
// needs them deleted.
func createTopics(t *testing.T, k *secureKafka, partitions int32) (in, out string) {
	t.Helper()
	in, out = testenv.UniqueName(t, "in", "-", 120), testenv.UniqueName(t, "out", "-", 120)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resps, err := k.adm.CreateTopics(ctx, partitions, 1, nil, in, out)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatalf("create topics on %s: %v", k.plain, err)
	}
	return in, out
}

// feeder produces numbered input records to one topic: keys spread over
// the partitions, and the unique event-id header by which connectd and
// verify tell records apart.
type feeder struct {
	cl    *kgo.Client
	topic string
	next  int
}

// newFeeder's client goes through the SASL_SSL listener with the test's
// client certificate and password when certs is set (the same kafkaauth
// options connectd builds), through PLAINTEXT otherwise.
func newFeeder(t *testing.T, broker string, certs *pki.PKI, topic string) *feeder {
	t.Helper()
	var opts []kgo.Opt
	if certs != nil {
		var err error
		opts, err = kafkaauth.Options(config.Kafka{
			TLS:  &config.TLS{CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey},
			SASL: &config.SASL{Mechanism: "SCRAM-SHA-512", Username: user, Password: password},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	opts = append(opts, kgo.DefaultProduceTopic(topic))
	return &feeder{cl: testenv.KafkaClient(t, []string{broker}, opts...), topic: topic}
}

func (f *feeder) produce(t *testing.T, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		j := f.next + i
		recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "k-%d", j%31), Value: fmt.Appendf(nil, `{"i":%d}`, j),
			Headers: []kgo.RecordHeader{{Key: "event-id", Value: fmt.Appendf(nil, "in-%d", j)}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d..%d to %s: %v", f.next, f.next+n, f.topic, err)
	}
	f.next += n
}

// tlsBlock is kafka.tls: CA, client certificate and key files.
type tlsBlock struct{ ca, cert, key string }

// secureConfig is what differs between the configs of the test: the
// connector is always in → out, exactly_once, with SCRAM-SHA-512.
type secureConfig struct {
	brokers, in, out, group string
	tls                     *tlsBlock // nil: no kafka.tls block
	password                string
}

func writeConfig(t *testing.T, dir, name string, c secureConfig) string {
	t.Helper()
	tlsYAML := ""
	if c.tls != nil {
		tlsYAML = fmt.Sprintf("  tls:\n    ca_file: %s\n", c.tls.ca)
		if c.tls.cert != "" {
			tlsYAML += fmt.Sprintf("    cert_file: %s\n    key_file: %s\n", c.tls.cert, c.tls.key)
		}
	}
	yaml := fmt.Sprintf(`instance_id: ${%s:kafkasecure}
admin:
  listen: 127.0.0.1:0
kafka:
  brokers: [%q]
%s  sasl:
    mechanism: SCRAM-SHA-512
    username: %s
    password: ${KAFKA_PASSWORD}
connectors:
  - name: copy
    guarantee: exactly_once
    commit.interval: 200ms
    shutdown_timeout: 10s
    source: {type: kafka, topics: [%s], group: %s}
    sink: {type: kafka, topic: %s}
`, testenv.InstanceIDEnv, c.brokers, tlsYAML, user, c.in, c.group, c.out)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// The password comes from the environment, as in production, and so
	// never sits in the file.
	if err := os.WriteFile(path+".password", []byte(c.password), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// passwordEnv is the environment carrying the password written beside
// the config at path.
func passwordEnv(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path + ".password")
	if err != nil {
		t.Fatal(err)
	}
	return []string{"KAFKA_PASSWORD=" + string(b)}
}

// refusedAtStart runs `connectd run` on path and wants it to exit 1
// within the check's time (15s at most), with one error naming the broker
// at addr whose cause holds each of want, and without the password in its
// output.
func refusedAtStart(t *testing.T, bin, path, addr string, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	env := passwordEnv(t, path)
	cmd := exec.CommandContext(ctx, bin, "run", "-c", path)
	cmd.Env = append(os.Environ(), append(env, testenv.InstanceIDEnv+"="+testenv.UniqueName(t, "i", "-", 60))...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	// The log quotes the error as a logfmt string.
	text := strings.ReplaceAll(string(out), `\"`, `"`)
	broker := "kafka broker " + addr + ": "
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		// Errorf, not Fatalf: the caller still checks that nothing
		// was written.
		t.Errorf("connectd run: %v after %v, want exit status 1 with %q and %q; its last lines:\n%s",
			err, took.Round(time.Millisecond), broker, want, lastLines(text, 6))
		return
	}
	if n := strings.Count(text, broker); n != 1 {
		t.Errorf("connectd run exited 1 after %v, but %q appears %d times (want once) in:\n%s", took, broker, n, text)
	}
	line := firstLineWith(text, broker)
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("connectd run's error does not say %q:\n%s", w, text)
		}
	}
	if pw := strings.TrimPrefix(env[0], "KAFKA_PASSWORD="); strings.Contains(text, pw) {
		t.Errorf("connectd run's output carries the password:\n%s", text)
	}
	t.Logf("refused after %v: %s", took.Round(time.Millisecond), line)
}

func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

func firstLineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// nothingWritten checks through the PLAINTEXT listener that the output
// topic is empty (no record, committed or aborted: no transaction was
// even begun) and that the group committed no offset.
func nothingWritten(t *testing.T, k *secureKafka, out, group string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := k.adm.ListEndOffsets(ctx, out)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", out, err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset != 0 {
			t.Errorf("output %s[%d]: end offset %d (%v), want 0: something was written", out, o.Partition, o.Offset, o.Err)
		}
	})
	offs, err := k.fetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("offsets of group %s: %v", group, err)
	}
	offs.Each(func(o kadm.OffsetResponse) {
		t.Errorf("group %s committed %s[%d] at %d: something was consumed", group, o.Topic, o.Partition, o.At)
	})
}

// fetchOffsets is the group's committed offsets. On a freshly formatted
// node the first ask makes the broker create __consumer_offsets, and it
// answers COORDINATOR_NOT_AVAILABLE until that is done.
func (k *secureKafka) fetchOffsets(ctx context.Context, group string) (kadm.OffsetResponses, error) {
	for {
		offs, err := k.adm.FetchOffsets(ctx, group)
		if !errors.Is(err, kerr.CoordinatorNotAvailable) || ctx.Err() != nil {
			return offs, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// committed is the sum of the group's committed offsets on in.
func committed(t *testing.T, k *secureKafka, group, in string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := k.fetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("offsets of group %s: %v", group, err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == in {
			sum += o.At
		}
	})
	return sum
}

// waitCommitted waits until the group's committed offsets on in add up to
// total, failing if p exits or two minutes pass.
func waitCommitted(t *testing.T, k *secureKafka, group, in string, total int64, p *testenv.Process) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var sum int64
	for time.Now().Before(deadline) {
		p.Alive()
		if sum = committed(t, k, group, in); sum >= total {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("group %s committed %d of %d input records in 2 minutes\n%s", group, sum, total, p.LogTail(40))
}

// verifyStopped runs `connectd verify --stopped` on the stopped
// connector, over the same SASL_SSL settings, and returns its report;
// exit 0 (clean) is required.
func verifyStopped(t *testing.T, bin, path string) verify.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "verify", "-c", path, "--connector", "copy", "--timeout", "2m", "--stopped")
	cmd.Env = append(os.Environ(), passwordEnv(t, path)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var rep verify.Report
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("verify: %v; stdout %q: %v\nstderr: %s", err, out, jerr, stderr.String())
	}
	if err != nil {
		t.Errorf("verify: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	t.Logf("verify: %s", strings.TrimSpace(string(out)))
	return rep
}
