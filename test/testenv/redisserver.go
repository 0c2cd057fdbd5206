package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	// Repairs counts the restarts whose AOF had a torn tail that Start
	// cut off with redis-check-aof --fix.
	Repairs int
}

// StartRedisServer starts a server with AOF on and the given appendfsync
// policy ("always" or "everysec"), killed when the test ends. It needs the
// redis-server and redis-check-aof binaries, which `make services`
// installs; with -short the test is skipped.
//
// The server runs with aof-load-truncated no, and Start repairs a torn AOF
// tail with redis-check-aof --fix first, as an operator must: Redis 7.0's
// own truncation (aof-load-truncated yes, the default) cuts a torn
// MULTI/EXEC block after its last complete command instead of before its
// MULTI, and the next restart then applies that torn prefix together with
// the next transaction written after it (sink/redis's
// TestRedisTornAOFTailRepaired shows what that does to a batch).
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
		"--logfile", "redis.log", "--protected-mode", "no", "--aof-load-truncated", "no"}
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
	s.repairAOF()
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

// repairAOF cuts a torn tail off the AOF of a previous run (a SIGKILL
// during write(2) leaves one) back to the last complete command outside a
// MULTI/EXEC block, with redis-check-aof --fix.
func (s *RedisServer) repairAOF() {
	s.t.Helper()
	manifest := filepath.Join(s.Dir, "appendonlydir", "appendonly.aof.manifest")
	if _, err := os.Stat(manifest); err != nil {
		return // first start
	}
	bin, err := exec.LookPath("redis-check-aof")
	if err != nil {
		s.t.Fatalf("redis-check-aof not found (%v): install the test services with `make services` (Debian package redis-tools), or run `go test -short`", err)
	}
	cmd := exec.Command(bin, "--fix", manifest)
	cmd.Stdin = strings.NewReader("y\n") // it asks before truncating
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("redis-check-aof --fix %s: %v\n%s", manifest, err, out)
	}
	if strings.Contains(string(out), "Successfully truncated") {
		s.Repairs++
		s.t.Logf("redis-server %s: torn AOF tail cut by redis-check-aof --fix: %s", s.Addr(), lastLine(out, "shrink"))
	}
}

// lastLine returns the last line of out that contains sub.
func lastLine(out []byte, sub string) string {
	lines := strings.Split(string(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
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
