package pg_test

import (
	"encoding/json"
	"errors"
	"sync"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/transform"
)

// gate is a test-only transform that freezes a connector mid-batch, like a
// process paused by SIGSTOP or a long GC: once it sees input field i >= from
// it blocks until released. It passes records through unchanged, so it is
// deterministic.
type gate struct {
	from    int64
	once    sync.Once
	started chan struct{} // closed at the first record
	reached chan struct{} // closed when it blocks
	release chan struct{}
	reachOn sync.Once
	relOnce sync.Once
}

// Release unblocks the gate for good.
func (g *gate) Release() { g.relOnce.Do(func() { close(g.release) }) }

var (
	gatesMu sync.Mutex
	gates   = map[string]*gate{}
)

func newGate(name string, from int64) *gate {
	g := &gate{from: from, started: make(chan struct{}), reached: make(chan struct{}), release: make(chan struct{})}
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

func (g *gate) Apply(in *connector.Record) ([]*connector.Record, error) {
	g.once.Do(func() { close(g.started) })
	var v struct {
		I int64 `json:"i"`
	}
	if err := json.Unmarshal(in.Value, &v); err != nil {
		return []*connector.Record{in}, nil // the poison inputs pass; the sink dead-letters or fails on them
	}
	if v.I >= g.from {
		g.reachOn.Do(func() { close(g.reached) })
		<-g.release
	}
	return []*connector.Record{in}, nil
}
