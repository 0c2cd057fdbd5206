package faults

import (
	"bufio"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// The proxy's own tests, on loopback with an echo server: no services
// needed, so they run in -short mode too.

// echoServer answers every line with the same line and counts the lines
// it received.
func echoServer(t *testing.T) (string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var got atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					got.Add(1)
					if _, err := c.Write(append(sc.Bytes(), '\n')); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), &got
}

// ownProcess resolves owners among the test process only.
func ownProcess(remote *net.TCPAddr, port int) int {
	return OwnerPID(remote, port, []int{os.Getpid()})
}

func newTestProxy(t *testing.T) (*Proxy, *atomic.Int64) {
	addr, got := echoServer(t)
	p, err := NewProxy("echo", func() string { return addr }, ownProcess)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, got
}

// roundTrip sends a line and waits up to within for its echo.
func roundTrip(c net.Conn, r *bufio.Reader, within time.Duration) error {
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := r.ReadString('\n')
	return err
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func self(pid int) bool { return pid == os.Getpid() }

func TestProxyForwardsAndFindsOwner(t *testing.T) {
	p, _ := newTestProxy(t)
	c, r := dial(t, p)
	if err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// The owner is this process: a fault matching it applies.
	p.Set(Fault{Match: self, Latency: 300 * time.Millisecond})
	start := time.Now()
	if err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("latency fault not applied to this process's connection (reply after %v)", d)
	}
	// A fault matching another process leaves the connection alone.
	p.Set(Fault{Match: func(pid int) bool { return pid == os.Getpid()+1 }, Blackhole: true})
	if err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatalf("fault for another process hit this one: %v", err)
	}
}

func TestProxyDropsRepliesButDeliversRequests(t *testing.T) {
	p, got := newTestProxy(t)
	c, r := dial(t, p)
	if err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	before := got.Load()
	p.Set(Fault{Match: self, DropReplies: 1, DropHold: 500 * time.Millisecond})
	if err := roundTrip(c, r, 300*time.Millisecond); err == nil {
		t.Fatal("reply arrived although replies are dropped")
	}
	waitFor(t, 5*time.Second, "the request to reach the server", func() bool { return got.Load() > before })
	// The broken stream is closed after DropHold; the client sees EOF.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection with a lost reply was resumed")
	}
	p.Clear()
	c2, r2 := dial(t, p)
	if err := roundTrip(c2, r2, 5*time.Second); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
}

func TestProxyBlackholeAndHeal(t *testing.T) {
	p, got := newTestProxy(t)
	c, r := dial(t, p)
	if err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(Fault{Match: self, Blackhole: true})
	before := got.Load()
	if err := roundTrip(c, r, 300*time.Millisecond); err == nil {
		t.Fatal("open connection passed a blackhole")
	}
	c2, r2 := dial(t, p) // a new connection is accepted but goes nowhere
	if err := roundTrip(c2, r2, 300*time.Millisecond); err == nil {
		t.Fatal("new connection passed a blackhole")
	}
	if got.Load() != before {
		t.Fatal("requests crossed the partition")
	}
	p.Clear() // heals: held connections are closed, new ones work
	for _, cr := range []*bufio.Reader{r, r2} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := cr.ReadString('\n'); err == nil {
			t.Fatal("held connection not closed by Clear")
		}
	}
	c3, r3 := dial(t, p)
	if err := roundTrip(c3, r3, 5*time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

func TestProxyCut(t *testing.T) {
	p, _ := newTestProxy(t)
	c, r := dial(t, p)
	if err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := p.Cut(self); n != 1 {
		t.Fatalf("cut %d connections, want 1", n)
	}
	if err := roundTrip(c, r, 5*time.Second); err == nil {
		t.Fatal("connection survived Cut")
	}
}

// A client that goes away (a SIGKILLed connectd) must be gone for the
// service too: a backend left open would hold its locks forever.
func TestProxyPropagatesClientClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = c.Read(make([]byte, 1)) // returns when the proxy closes its side
		c.Close()
		close(closed)
	}()
	p, err := NewProxy("svc", func() string { return ln.Addr().String() }, ownProcess)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the proxy dial the service
	c.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the service's connection outlived its client")
	}
}

// TestProxyEnded: a connection the service closes counts as ended for its
// owner; one the client closes, or the proxy cuts, does not.
func TestProxyEnded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closeNext := make(chan bool, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if <-closeNext {
				c.Close() // the service ends it, as a stopping broker does
				continue
			}
			go func() { _, _ = bufio.NewReader(c).ReadString('\n'); c.Close() }()
		}
	}()
	p, err := NewProxy("svc", func() string { return ln.Addr().String() }, ownProcess)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	own := func(pid int) bool { return pid == os.Getpid() }
	wait := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for p.Ended(own) != want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := p.Ended(own); got != want {
			t.Fatalf("Ended = %d, want %d", got, want)
		}
	}

	closeNext <- true
	c, r := dial(t, p)
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("the service's close did not reach the client")
	}
	c.Close()
	wait(1)

	closeNext <- false
	c, _ = dial(t, p)
	c.Close() // the client ends it
	closeNext <- false
	c2, _ := dial(t, p)
	time.Sleep(100 * time.Millisecond) // accepted and dialled
	p.Cut(own)
	c2.Close()
	time.Sleep(200 * time.Millisecond)
	wait(1)
	if p.Ended(func(int) bool { return false }) != 0 {
		t.Fatal("Ended counts connections its match rejects")
	}
}
