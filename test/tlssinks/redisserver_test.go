package tlssinks_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/test/pki"
)

// The Redis ACL user the sinks log in as; the default user is switched
// off, so every connection must name it.
const (
	redisUser     = "connectd"
	redisPassword = "redis-pw-4Hn"
)

// tlsRedis is a redis-server of the test's own with only a TLS port on
// loopback (--port 0), requiring a client certificate signed by the test
// CA (tls-auth-clients yes), AOF on with appendfsync always (what the
// exactly-once sink relies on), and the ACL user redisUser.
type tlsRedis struct {
	t     *testing.T
	addr  string
	dir   string
	certs *pki.PKI
	cmd   *exec.Cmd
}

// startTLSRedis starts the server; it needs the redis-server binary that
// `make services` installs, built with TLS (Debian's is).
func startTLSRedis(t *testing.T, certs *pki.PKI) *tlsRedis {
	t.Helper()
	if testing.Short() {
		t.Skip("starts its own redis-server; skipped with -short")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (%v): install it with `make services` (test/scripts/redis.sh installs Debian's redis-server), or run `go test -short`", err)
	}
	port := freePort(t)
	r := &tlsRedis{t: t, addr: "127.0.0.1:" + strconv.Itoa(port), dir: t.TempDir(), certs: certs}
	r.cmd = exec.Command(bin, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", certs.ServerCert, "--tls-key-file", certs.ServerKey, "--tls-ca-cert-file", certs.CAFile,
		"--tls-auth-clients", "yes", "--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--daemonize", "no", "--logfile", "redis.log", "--protected-mode", "no")
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		_ = r.cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			t.Logf("TLS redis-server log:\n%s", b)
		}
	})
	// Until the ACL user exists, the default user (no password) is the
	// only way in; it is switched off right after.
	def := r.client("", "")
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := def.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server with TLS on %s did not answer: %v (is it built with TLS? `redis-server --tls-port` needs it)", r.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, cmd := range [][]any{
		{"ACL", "SETUSER", redisUser, "on", ">" + redisPassword, "~*", "&*", "+@all"},
		{"ACL", "SETUSER", "default", "off"},
	} {
		if err := def.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd[:3], err)
		}
	}
	_ = def.Close()
	t.Logf("TLS redis-server on %s (TLS only, client certificates required, ACL user %s)", r.addr, redisUser)
	return r
}

// client is a client over mutual TLS as user (none: the default user).
func (r *tlsRedis) client(user, password string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.addr, Username: user, Password: password, MaxRetries: -1,
		TLSConfig: &tls.Config{RootCAs: r.certs.Pool, Certificates: []tls.Certificate{r.certs.Client}, ServerName: "127.0.0.1",
			MinVersion: tls.VersionTLS12}})
}

// url is a redis:// URL as user with password: the ACL user in the URL,
// TLS from the sink's tls block.
func (r *tlsRedis) url(user, password string) string {
	return fmt.Sprintf("redis://%s:%s@%s/0", user, password, r.addr)
}

// keys counts the keys under prefix.
func (r *tlsRedis) keys(prefix string) int {
	r.t.Helper()
	c := r.client(redisUser, redisPassword)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		r.t.Fatalf("KEYS %s*: %v", prefix, err)
	}
	return len(keys)
}
