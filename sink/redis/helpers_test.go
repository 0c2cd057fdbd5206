package redis

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/test/testenv"
)

// sharedConfig is a config on the Redis `make services` starts, under a
// key prefix unique to the test.
func sharedConfig(t testing.TB) Config {
	t.Helper()
	addr, prefix := testenv.Redis(t)
	return Config{Addr: addr, KeyPrefix: prefix, AuditLog: true, TestApplyCounter: true}
}

func newStore(t testing.TB, cfg Config, dlqTopic string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := NewStore(ctx, cfg, dlqTopic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// makeRecs returns n records of tp from offset from, with event IDs
// "<topic>-<partition>-<offset>" and JSON values.
func makeRecs(tp connector.TopicPartition, from int64, n int) []*connector.Record {
	recs := make([]*connector.Record, n)
	for i := range recs {
		off := from + int64(i)
		id := fmt.Sprintf("%s-%d-%d", tp.Topic, tp.Partition, off)
		recs[i] = &connector.Record{
			Key:     []byte("k" + strconv.FormatInt(off%7, 10)),
			Value:   fmt.Appendf(nil, `{"id":%q,"amount":%d,"note":"some payload to make the value realistic"}`, id, off),
			EventID: id,
			Origin:  connector.Origin{Topic: tp.Topic, Partition: tp.Partition, Offset: off},
		}
	}
	return recs
}

func mustKind(t testing.TB, err error, want connector.CommitErrorKind) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %v error, got nil", want)
	}
	if got := connector.KindOf(err); got != want {
		t.Fatalf("want a %v error, got %v: %v", want, got, err)
	}
}

// countKeys counts the keys under pattern.
func countKeys(t testing.TB, c *redis.Client, pattern string) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// redisServer is a redis-server process the test owns, on a free loopback
// port with its own data directory, for tests that kill Redis or change
// server-wide state (SCRIPT FLUSH, maxmemory).
type redisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string
	cmd  *exec.Cmd
}

// startRedisServer starts a server with AOF on and the given appendfsync
// policy. It needs the redis-server binary, which `make services` installs.
func startRedisServer(t testing.TB, fsync string) *redisServer {
	t.Helper()
	if testing.Short() {
		t.Skip("starts its own redis-server; skipped with -short")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (%v): install and start the test services with `make services`, or run `go test -short`", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &redisServer{t: t, bin: bin, dir: t.TempDir(), port: port}
	s.args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--appendonly", "yes", "--appendfsync", fsync, "--save", "", "--daemonize", "no",
		"--logfile", "redis.log", "--protected-mode", "no"}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start starts the server on its directory and waits until it answers
// PING (which also means it has loaded its AOF).
func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer: %v (log in %s/redis.log)", s.addr(), err, s.dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs the server and reaps it.
func (s *redisServer) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}
