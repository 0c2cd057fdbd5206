package e2e

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/transform"
)

// Gate is a test-only transform ("test_gate", config `name`) that freezes a
// connector mid-batch, like a process paused by SIGSTOP or a long GC: once
// it sees a JSON input whose field i is >= from, it blocks until released.
// It passes records through unchanged (a non-JSON value too), so it is
// deterministic.
type Gate struct {
	from    int64
	once    sync.Once
	started chan struct{} // closed at the first record
	reached chan struct{} // closed when it blocks
	release chan struct{}
	reachOn sync.Once
	relOnce sync.Once
}

var (
	gatesMu sync.Mutex
	gates   = map[string]*Gate{}
)

// NewGate registers a gate under name, for configs to use.
func NewGate(name string, from int64) *Gate {
	g := &Gate{from: from, started: make(chan struct{}), reached: make(chan struct{}), release: make(chan struct{})}
	gatesMu.Lock()
	gates[name] = g
	gatesMu.Unlock()
	return g
}

func init() {
	transform.Register(transform.Spec{
		Name:    "test_gate",
		Summary: "test only: blocks at a record until released",
		Build: func(decode func(any) error) (transform.Transform, error) {
			var cfg struct {
				Name string `yaml:"name"`
			}
			if err := decode(&cfg); err != nil {
				return nil, err
			}
			gatesMu.Lock()
			g := gates[cfg.Name]
			gatesMu.Unlock()
			if g == nil {
				return nil, errors.New("no gate " + cfg.Name)
			}
			return g, nil
		},
	})
}

// Started is closed when the gate saw its first record.
func (g *Gate) Started() <-chan struct{} { return g.started }

// Reached is closed when the gate blocks.
func (g *Gate) Reached() <-chan struct{} { return g.reached }

// Release unblocks the gate for good.
func (g *Gate) Release() { g.relOnce.Do(func() { close(g.release) }) }

// Apply implements transform.Transform.
func (g *Gate) Apply(in *connector.Record) ([]*connector.Record, error) {
	g.once.Do(func() { close(g.started) })
	var v struct {
		I int64 `json:"i"`
	}
	if json.Unmarshal(in.Value, &v) == nil && v.I >= g.from {
		g.reachOn.Do(func() { close(g.reached) })
		<-g.release
	}
	return []*connector.Record{in}, nil
}

// WaitClosed waits up to a minute for ch to be closed.
func WaitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for: %s", what)
	}
}
