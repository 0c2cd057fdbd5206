package admin_test

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
)

// fake is an in-memory admin.Connectors. Every method either fails without
// changing anything or succeeds completely, as the interface requires of
// the daemon, so a test can check that a rejected request left it as it
// was.
type fake struct {
	mu    sync.Mutex
	conns map[string]*fakeConn
	// notReady makes Ready false.
	notReady bool
}

type fakeConn struct {
	cfg      config.Connector
	raw      []byte
	state    connector.State
	trace    string
	offsets  connector.Checkpoint
	restarts int
}

// rejectedType is a source type the fake's Create and Update refuse with a
// config error, as the daemon refuses a component it cannot build.
const rejectedType = "rejected"

func newFake() *fake { return &fake{conns: map[string]*fakeConn{}} }

// add puts a connector in the fake directly.
func (f *fake) add(c config.Connector, raw []byte, state connector.State, offsets connector.Checkpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if offsets == nil {
		offsets = connector.Checkpoint{}
	}
	f.conns[c.Name] = &fakeConn{cfg: c, raw: raw, state: state, offsets: offsets}
}

// snapshot is a deep copy of the fake's state, for comparing before and
// after a request.
func (f *fake) snapshot() map[string]fakeConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]fakeConn, len(f.conns))
	for name, c := range f.conns {
		cp := *c
		cp.raw = slices.Clone(c.raw)
		cp.offsets = c.offsets.Clone()
		out[name] = cp
	}
	return out
}

func (f *fake) get(name string) (*fakeConn, error) {
	c, ok := f.conns[name]
	if !ok {
		return nil, admin.ErrNotFound
	}
	return c, nil
}

func (f *fake) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.conns))
}

func (f *fake) Status(name string) (connector.Status, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.conns[name]
	if !ok {
		return connector.Status{}, false
	}
	st := connector.Status{Name: name, State: c.state, Guarantee: string(c.cfg.Guarantee), Error: c.trace,
		Aborts: map[string]uint64{"abortable": 0, "fenced": 0, "commit_unknown": 0, "fatal": 0}}
	for _, tp := range c.offsets.Partitions() {
		st.Partitions = append(st.Partitions, connector.PartitionStatus{Topic: tp.Topic, Partition: tp.Partition, Checkpoint: c.offsets[tp]})
	}
	if c.cfg.Tasks > 1 {
		// As connector.Tasks reports them: task 1 failed.
		for i := range c.cfg.Tasks {
			ts := connector.TaskStatus{ID: i, State: c.state}
			if i == 1 {
				ts.State, ts.Error = connector.Failed, "boom at postgres://u:hunter2@db/x"
			}
			st.Tasks = append(st.Tasks, ts)
		}
	}
	return st, true
}

func (f *fake) Config(name string) (config.Connector, []byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.conns[name]
	if !ok {
		return config.Connector{}, nil, false
	}
	return c.cfg, c.raw, true
}

func rejects(c config.Connector) error {
	if c.Source.Type == rejectedType {
		return config.Errors{{Pos: c.Source.Pos, Msg: "source type " + rejectedType + " cannot be built"}}
	}
	return nil
}

func (f *fake) Create(_ context.Context, c config.Connector, raw []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.conns[c.Name]; ok {
		return admin.ErrExists
	}
	if err := rejects(c); err != nil {
		return err
	}
	f.conns[c.Name] = &fakeConn{cfg: c, raw: slices.Clone(raw), state: connector.Running, offsets: connector.Checkpoint{}}
	return nil
}

func (f *fake) Update(_ context.Context, c config.Connector, raw []byte) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := rejects(c); err != nil {
		return false, err
	}
	old, ok := f.conns[c.Name]
	if !ok {
		f.conns[c.Name] = &fakeConn{cfg: c, raw: slices.Clone(raw), state: connector.Running, offsets: connector.Checkpoint{}}
		return true, nil
	}
	old.cfg, old.raw = c, slices.Clone(raw)
	old.restarts++
	return false, nil
}

func (f *fake) Delete(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.get(name); err != nil {
		return err
	}
	delete(f.conns, name)
	return nil
}

func (f *fake) setState(name string, s connector.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.get(name)
	if err != nil {
		return err
	}
	c.state = s
	return nil
}

func (f *fake) Pause(name string) error                        { return f.setState(name, connector.Paused) }
func (f *fake) Resume(name string) error                       { return f.setState(name, connector.Running) }
func (f *fake) Stop(_ context.Context, name string) error      { return f.setState(name, connector.Stopped) }
func (f *fake) Restart(_ context.Context, name string) error   { return f.restart(name) }
func (f *fake) ResetOffsets(_ context.Context, n string) error { return f.alter(n, nil) }

func (f *fake) restart(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.get(name)
	if err != nil {
		return err
	}
	c.state, c.trace = connector.Running, ""
	c.restarts++
	return nil
}

func (f *fake) Offsets(_ context.Context, name string) (connector.Checkpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.get(name)
	if err != nil {
		return nil, err
	}
	return c.offsets.Clone(), nil
}

func (f *fake) AlterOffsets(_ context.Context, name string, cp connector.Checkpoint) error {
	return f.alter(name, cp)
}

// alter merges cp into name's offsets, or with a nil cp resets them.
func (f *fake) alter(name string, cp connector.Checkpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.get(name)
	if err != nil {
		return err
	}
	if c.state != connector.Stopped {
		return admin.ErrNotStopped
	}
	if cp == nil {
		c.offsets = connector.Checkpoint{}
		return nil
	}
	c.offsets.Merge(cp)
	return nil
}

func (f *fake) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.notReady
}
