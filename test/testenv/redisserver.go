package testenv

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server process a test owns, on a free loopback
// port with its own data directory, for tests that kill Redis or change
// server-wide state (SCRIPT FLUSH, maxmemory).
type RedisServer struct {
	t    testing.TB
	bin  string
	Dir  string
	port int
	args []string
	cmd  *exec.Cmd
}

// StartRedisServer starts a server with AOF on and the given appendfsync
// policy ("always" or "everysec"), killed when the test ends. It needs the
// redis-server binary, which `make services` installs; with -short the test
// is skipped.
func StartRedisServer(t testing.TB, fsync string) *RedisServer {
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
	s := &RedisServer{t: t, bin: bin, Dir: t.TempDir(), port: port}
	s.args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--appendonly", "yes", "--appendfsync", fsync, "--save", "", "--daemonize", "no",
		"--logfile", "redis.log", "--protected-mode", "no"}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Start starts the server on its directory and waits until it answers PING
// (which also means it has loaded its AOF).
func (s *RedisServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
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
			s.t.Fatalf("redis-server on %s did not answer: %v (log in %s/redis.log)", s.Addr(), err, s.Dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill SIGKILLs the server and reaps it.
func (s *RedisServer) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}
