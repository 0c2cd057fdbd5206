package faults

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// Proxy forwards TCP connections from a loopback port to one service
// endpoint (a broker's published port, PostgreSQL, Redis) and injects faults
// into the connections of chosen processes only. connectd's configs name the
// proxy's address, never the service's, so every byte connectd exchanges with
// a service passes through here; the test's own clients pass through too
// (Kafka advertises the proxies), but faults never match them.
//
// A connection's owner is the process that opened it, found in /proc when
// it is accepted (owner.go): that is what lets one connectd instance be cut
// off from the brokers while the others, and the test, keep talking.
//
// Faults affect bytes, not requests: latency delays each chunk of reply,
// dropping discards replies while the requests still reach the service (the
// service applies a commit whose answer never arrives, so the client learns
// nothing of the outcome), a blackhole forwards nothing either way. A
// connection whose stream lost bytes is never resumed — that would corrupt
// the protocol — but closed when the fault is cleared.
type Proxy struct {
	name     string
	ln       net.Listener
	upstream func() string
	owner    func(*net.TCPAddr, int) int

	mu     sync.Mutex
	fault  Fault
	links  map[*link]struct{}
	rng    *rand.Rand
	closed bool
	wg     sync.WaitGroup
	// ended counts, per owner pid, the connections the service ended
	// itself (a broker shutting down closes its clients' connections).
	ended map[int]int

	// Stats counts what the faults did, for the scenario's log; read it
	// through String or Dropped while connections are open.
	Stats ProxyStats
}

// ProxyStats counts the proxy's interventions.
type ProxyStats struct {
	Accepted, Cut, DroppedReplies, Blackholed int
}

// Fault is what a Proxy does to the connections Match selects. The zero
// Fault does nothing.
type Fault struct {
	// Match selects connections by the pid of the process that opened them
	// (0 when unknown, e.g. the test's own clients). nil matches none.
	Match func(pid int) bool
	// Latency delays every chunk of reply by this much.
	Latency time.Duration
	// DropReplies is the probability that a chunk of reply is discarded;
	// from then on the connection forwards requests but no replies, and it
	// is closed DropHold later (default 3s), as a client's request timeout
	// or a middlebox would end it.
	DropReplies float64
	DropHold    time.Duration
	// Blackhole forwards nothing either way and holds new connections
	// without dialling the service: a network partition. Clearing the
	// fault closes the held connections, so clients reconnect.
	Blackhole bool
}

func (f Fault) matches(pid int) bool { return f.Match != nil && f.Match(pid) }

// debugProxy (FAULTS_DEBUG_PROXY set) logs every connection's owner.
var debugProxy = os.Getenv("FAULTS_DEBUG_PROXY") != ""

// link is one proxied connection.
type link struct {
	client, server net.Conn // server is nil while held by a blackhole
	pid            int
	mu             sync.Mutex
	broken         bool // bytes were discarded: close on Clear
	closing        bool // the proxy closed it (not the service)
}

// NewProxy listens on 127.0.0.1 (an ephemeral port) and forwards to
// upstream(), asked anew for every connection so a restarted container
// with a new published port is followed. owner resolves a connection's
// process; nil uses OwnerPID with no candidates (every owner 0).
func NewProxy(name string, upstream func() string, owner func(remote *net.TCPAddr, listenPort int) int) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if owner == nil {
		owner = func(*net.TCPAddr, int) int { return 0 }
	}
	p := &Proxy{name: name, ln: ln, upstream: upstream, owner: owner,
		links: map[*link]struct{}{}, ended: map[int]int{}, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address, what connectd is configured with.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Name is the service the proxy stands for.
func (p *Proxy) Name() string { return p.name }

// Dropped is the number of replies dropped so far.
func (p *Proxy) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Stats.DroppedReplies
}

// Ended counts the connections of the processes match selects that the
// service ended itself, not the proxy nor the client: what a broker's
// controlled shutdown does to its clients.
func (p *Proxy) Ended(match func(pid int) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pid, c := range p.ended {
		if match(pid) {
			n += c
		}
	}
	return n
}

// Set installs f for new and open connections alike.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	p.fault = f
	p.mu.Unlock()
}

// Clear removes the fault and closes every connection that lost bytes or
// was held by a blackhole: their clients reconnect.
func (p *Proxy) Clear() {
	p.mu.Lock()
	p.fault = Fault{}
	var broken []*link
	for l := range p.links {
		l.mu.Lock()
		if l.broken || l.server == nil {
			broken = append(broken, l)
		}
		l.mu.Unlock()
	}
	p.mu.Unlock()
	for _, l := range broken {
		l.close()
	}
}

// Cut closes the open connections of the processes match selects at once
// (a reset, as a crashed middlebox or a restarted NAT would do) and returns
// how many.
func (p *Proxy) Cut(match func(pid int) bool) int {
	p.mu.Lock()
	var cut []*link
	for l := range p.links {
		if match(l.pid) {
			cut = append(cut, l)
		}
	}
	p.Stats.Cut += len(cut)
	p.mu.Unlock()
	for _, l := range cut {
		l.close()
	}
	return len(cut)
}

// Close stops accepting, closes every connection and waits for the
// forwarding goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
}

func (p *Proxy) current() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		l := &link{client: c}
		l.pid = p.owner(c.RemoteAddr().(*net.TCPAddr), p.Port())
		if debugProxy {
			fmt.Fprintf(os.Stderr, "proxy %s: accepted %s, owner pid %d\n", p.name, c.RemoteAddr(), l.pid)
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.Stats.Accepted++
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve forwards one connection until either side closes it.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer func() {
		l.close()
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	// A partitioned process's new connection is accepted but goes nowhere:
	// its requests are swallowed until the fault is cleared (which closes
	// it) or the client gives up.
	if f := p.current(); f.Blackhole && f.matches(l.pid) {
		l.mu.Lock()
		l.broken = true
		l.mu.Unlock()
		p.mu.Lock()
		p.Stats.Blackholed++
		p.mu.Unlock()
		_, _ = io.Copy(io.Discard, l.client)
		return
	}
	server, err := net.DialTimeout("tcp", p.upstream(), 5*time.Second)
	if err != nil {
		return // the service is down (a fault of its own): the client sees a reset
	}
	l.mu.Lock()
	l.server = server
	l.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pump(l, l.client, server, false)
	}()
	p.pump(l, server, l.client, true)
	l.close()
	<-done
}

// pump copies src to dst, applying the current fault; replies says whether
// src is the service.
func (p *Proxy) pump(l *link, src, dst net.Conn, replies bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.discard(l, replies) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			// Either side closing (a FIN, a reset, a killed process)
			// closes both: a real connection ends for both ends, and a
			// database backend must see its client gone to roll back and
			// release its locks.
			l.mu.Lock()
			byProxy := l.closing
			l.mu.Unlock()
			if replies && !byProxy {
				p.mu.Lock()
				p.ended[l.pid]++
				p.mu.Unlock()
			}
			l.close()
			return
		}
	}
}

// discard applies the fault to one chunk and says whether to drop it.
func (p *Proxy) discard(l *link, replies bool) bool {
	f := p.current()
	l.mu.Lock()
	broken := l.broken
	l.mu.Unlock()
	if broken && replies {
		return true // once a reply was lost, none follows on this stream
	}
	if !f.matches(l.pid) {
		return false
	}
	if f.Blackhole {
		l.mu.Lock()
		l.broken = true
		l.mu.Unlock()
		return true
	}
	if !replies {
		return false
	}
	if f.Latency > 0 {
		time.Sleep(f.Latency)
	}
	if f.DropReplies > 0 {
		p.mu.Lock()
		drop := p.rng.Float64() < f.DropReplies
		if drop {
			p.Stats.DroppedReplies++
		}
		p.mu.Unlock()
		if drop {
			l.mu.Lock()
			l.broken = true
			l.mu.Unlock()
			hold := f.DropHold
			if hold <= 0 {
				hold = 3 * time.Second
			}
			time.AfterFunc(hold, l.close)
			return true
		}
	}
	return false
}

func (l *link) close() {
	l.mu.Lock()
	l.closing = true
	c, s := l.client, l.server
	l.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	if s != nil {
		_ = s.Close()
	}
}

// String describes the proxy for logs.
func (p *Proxy) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%s proxy %s -> %s (accepted %d, cut %d, replies dropped %d, held %d)",
		p.name, p.ln.Addr(), p.upstream(), p.Stats.Accepted, p.Stats.Cut, p.Stats.DroppedReplies, p.Stats.Blackholed)
}
