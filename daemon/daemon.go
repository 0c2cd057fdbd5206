// Package daemon hosts connectors: it starts the embedded broker when the
// config asks for one, runs every connector in its own goroutine with its own
// lifecycle, so that one failing connector (an error or even a panic) shows
// FAILED without stopping the others, and carries out the admin API's
// lifecycle requests (create, pause, resume, stop, restart, delete, offsets).
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/bounded"
	"github.com/connectd/connectd/cluster"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/embedded"
	"github.com/connectd/connectd/metrics"
	"github.com/connectd/connectd/pipeline"
)

// Daemon runs the connectors of one config plus those created through the
// admin API.
type Daemon struct {
	cfg *config.Config
	log *slog.Logger
	// ClientOpts are extra Kafka client options for every connector; set
	// before Start.
	ClientOpts []kgo.Opt
	// Metrics, if set before Start, receives every connector's commit
	// observations and fencing events.
	Metrics *metrics.Metrics
	// Until, if set before Start, makes every connector a bounded job
	// over its input up to where Until says (bounded.go).
	Until *bounded.Until
	// Configs, if set before Start, is cluster mode (cluster.go): the
	// connectors are those of the cluster's config topic, and lifecycle
	// requests write there.
	Configs ConfigStore
	jobs    map[string]job

	mu      sync.Mutex
	broker  *kfake.Cluster
	env     pipeline.Env
	ctx     context.Context // parent of every connector's context
	cancel  context.CancelFunc
	entries map[string]*entry
	state   *stateFile
	// Cluster mode: the config topic position applied so far, a channel
	// closed at each apply, and the end of the topic's watcher.
	applied       int64
	appliedSignal chan struct{}
	watchDone     chan struct{}
}

// entry is one hosted connector.
type entry struct {
	spec *pipeline.Spec
	raw  []byte // the definition as given through the API, nil for the file's
	conn connector.Runner
	// stop ends the current run and waits for it; nil when not running.
	stop    func()
	stopped bool // STOPPED by request (KIP-875); stays so across restarts
	// shadow is set on a replay of another connector (Kappa
	// re-processing, replay.go) until it is promoted.
	shadow *shadowMeta
	// finished says how a connector with a bounded: block finished
	// (FINISHED, block.go); "" until then.
	finished string
	// Cluster mode: the config topic version of this definition and
	// target, the target, and why the definition does not decode here.
	version int64
	target  cluster.Target
	broken  error
}

// Errors returned for lifecycle requests; see package admin.
var (
	ErrNotFound   = admin.ErrNotFound
	ErrExists     = admin.ErrExists
	ErrNotStopped = admin.ErrNotStopped
)

// New decodes every connector of cfg; it fails with every config error at once.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: log, entries: map[string]*entry{}}
	var errs []error
	for _, cc := range cfg.Connectors {
		s, err := pipeline.Decode(cc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.entries[cc.Name] = &entry{spec: s}
	}
	if err := config.Merge(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

// Brokers are the Kafka bootstrap addresses connectors use. A configured
// entry may hold a comma-separated list, as Kafka's bootstrap.servers does,
// so brokers: [${KAFKA_BROKERS}] takes "a:9092,b:9092".
func (d *Daemon) Brokers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.brokersLocked()
}

func (d *Daemon) brokersLocked() []string {
	if d.broker != nil {
		return d.broker.ListenAddrs()
	}
	return SplitBrokers(d.cfg.Kafka.Brokers)
}

// SplitBrokers splits comma-separated entries and drops empty ones.
func SplitBrokers(entries []string) []string {
	var out []string
	for _, e := range entries {
		for _, b := range strings.Split(e, ",") {
			if b = strings.TrimSpace(b); b != "" {
				out = append(out, b)
			}
		}
	}
	return out
}

// Start starts the embedded broker (if configured), applies the state file
// (connectors created, changed, stopped or deleted through the API), and
// starts every connector not STOPPED. In cluster mode the connectors are
// instead those of the config topic (cluster.go), which the file seeds.
func (d *Daemon) Start(ctx context.Context) error {
	if err := d.startLocal(ctx); err != nil {
		return err
	}
	if d.Configs != nil {
		return d.startCluster(ctx)
	}
	return nil
}

func (d *Daemon) startLocal(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.cfg.Kafka.Embedded; e != nil {
		b, err := embedded.Start(*e)
		if err != nil {
			return err
		}
		d.broker = b
		d.log.Info("embedded Kafka broker started", "listen", b.ListenAddrs(), "data_dir", e.DataDir)
	}
	if path := d.cfg.Admin.StateFile; path != "" {
		st, err := loadState(path)
		if err != nil {
			return err
		}
		d.state = st
		if err := d.applyStateLocked(); err != nil {
			return err
		}
	}
	d.env = pipeline.Env{
		Brokers:      d.brokersLocked(),
		InstanceID:   d.cfg.InstanceID,
		OffsetsTopic: d.cfg.OffsetsTopic,
		ClientOpts:   d.ClientOpts,
		Logger:       d.log,
		OnFenced:     d.onFenced,
		Observer:     d.observer,
	}
	if err := d.finishPromotionsLocked(ctx); err != nil {
		return err
	}
	if d.Until != nil {
		if err := d.captureStopsLocked(ctx); err != nil {
			return err
		}
	}
	d.ctx, d.cancel = context.WithCancel(ctx)
	if d.Configs != nil {
		var errs []error
		for _, e := range d.entries {
			errs = append(errs, clusterable(e.spec))
		}
		clear(d.entries) // the config topic's connectors replace the file's
		return config.Merge(errs...)
	}
	for _, e := range d.entries {
		if !e.stopped {
			d.startLocked(e)
		}
	}
	return nil
}

func (d *Daemon) onFenced(name string) {
	d.log.Warn("connector session fenced by a newer owner; rejoining", "connector", name)
	if d.Metrics != nil {
		d.Metrics.Fenced(name)
	}
}

// startLocked builds a fresh connector for e and runs it.
func (d *Daemon) startLocked(e *entry) {
	var c connector.Runner
	err := e.broken
	if err == nil {
		err = d.startBlockLocked(e)
	}
	if err != nil {
		c = &unstarted{name: e.spec.Conf.Name, guarantee: string(e.spec.Conf.Guarantee), err: err}
	} else {
		c = pipeline.Build(e.spec, d.connectorEnv(e.spec.Conf.Name, "pipeline"))
	}
	ctx, cancel := context.WithCancel(d.ctx)
	done := make(chan struct{})
	e.conn = c
	e.stop = func() { cancel(); <-done }
	go func() {
		defer close(done)
		run(ctx, c, d.log)
	}()
	d.watchBlockLocked(ctx, e)
}

// connectorEnv is the environment of connector's Kafka clients in one
// role ("pipeline" for those the running connector builds, "offsets" for
// KIP-875 reads and changes): every client gets ClientOpts plus the hook
// feeding its franz-go metrics, labelled with the connector and role.
func (d *Daemon) connectorEnv(connector, role string) pipeline.Env {
	env := d.env
	env.ClientOpts = d.clientOpts(connector, role)
	return env
}

func (d *Daemon) clientOpts(connector, role string) []kgo.Opt {
	opts := slices.Clip(d.ClientOpts)
	if d.Metrics != nil {
		opts = append(opts, kgo.WithHooks(d.Metrics.KafkaHook(connector, role)))
	}
	return opts
}

func (d *Daemon) observer(name string) connector.Observer {
	if d.Metrics == nil {
		return nil
	}
	return d.Metrics.Observer(name)
}

// run runs one connector, turning a panic into FAILED for that connector
// alone: the other connectors keep running.
func run(ctx context.Context, c connector.Runner, log *slog.Logger) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			c.MarkFailed(err)
			log.Error("connector panicked", "connector", c.Name(), "err", err)
		}
	}()
	_ = c.Run(ctx) // a failure is recorded in the connector's status
}

// halt stops e's current run, if any, and waits for it: the open batch
// commits or aborts within the connector's shutdown timeout. It must be
// called without d.mu held (the run may take that long).
func halt(e *entry) {
	if e.stop != nil {
		e.stop()
		e.stop = nil
	}
}

// Stop stops every connector, then the embedded broker.
func (d *Daemon) Stop() {
	d.mu.Lock()
	if d.cancel != nil {
		d.cancel()
	}
	watching := d.watchDone
	d.mu.Unlock()
	if watching != nil {
		<-watching // no reconcile starts a connector after this
	}
	d.mu.Lock()
	entries := make([]*entry, 0, len(d.entries))
	for _, e := range d.entries {
		entries = append(entries, e)
	}
	d.mu.Unlock()
	for _, e := range entries {
		halt(e)
	}
	d.CloseBroker()
}

// CloseBroker closes the embedded broker, if there is one and it is still
// open. Closing writes its data directory's snapshot; a process that exits
// without it (SIGKILL, or a second signal's hard exit) was seen to find
// its committed transactional output invisible at the next start, so even
// a hard exit closes the broker first.
func (d *Daemon) CloseBroker() {
	d.mu.Lock()
	b := d.broker
	d.broker = nil
	d.mu.Unlock()
	if b != nil {
		b.Close()
	}
}

// Names returns the connector names, sorted.
func (d *Daemon) Names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.entries))
	for n := range d.entries {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Status returns one connector's status.
func (d *Daemon) Status(name string) (connector.Status, bool) {
	d.mu.Lock()
	e, ok := d.entries[name]
	var finished string
	if ok {
		finished = e.finished
	}
	d.mu.Unlock()
	if !ok {
		return connector.Status{}, false
	}
	if e.conn == nil {
		st := connector.Status{Name: name, State: connector.Unassigned, Guarantee: string(e.spec.Conf.Guarantee)}
		if e.stopped {
			st.State = connector.Stopped
		}
		return st, true
	}
	st := e.conn.Status()
	if finished != "" {
		st.State, st.Message = connector.Finished, finished
	}
	if e.stopped {
		st.State = connector.Stopped
	}
	return st, true
}

// Ready reports whether every connector runs, is paused or stopped on
// request, or finished (a bounded connector); a FAILED or not yet started
// connector makes the daemon not ready.
func (d *Daemon) Ready() bool {
	for _, name := range d.Names() {
		st, _ := d.Status(name)
		switch st.State {
		case connector.Running, connector.Paused, connector.Stopped, connector.Finished:
		default:
			return false
		}
	}
	return true
}

// Config returns a connector's parsed config and the definition it was
// created with through the API (nil for connectors of the config file).
func (d *Daemon) Config(name string) (config.Connector, []byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[name]
	if !ok {
		return config.Connector{}, nil, false
	}
	return e.spec.Conf, e.raw, true
}

// Create adds and starts a connector.
func (d *Daemon) Create(ctx context.Context, cc config.Connector, raw []byte) error {
	if d.Configs != nil {
		_, err := d.clusterPut(ctx, cc, raw, true)
		return err
	}
	spec, err := pipeline.Decode(cc)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.entries[cc.Name]; ok {
		return fmt.Errorf("%w: %s", ErrExists, cc.Name)
	}
	e := &entry{spec: spec, raw: withName(raw, cc.Name)}
	d.entries[cc.Name] = e
	if err := d.saveLocked(); err != nil {
		delete(d.entries, cc.Name)
		return err
	}
	d.startLocked(e)
	return nil
}

// Update replaces a connector's config and restarts that connector only, or
// creates it.
func (d *Daemon) Update(ctx context.Context, cc config.Connector, raw []byte) (bool, error) {
	if d.Configs != nil {
		return d.clusterPut(ctx, cc, raw, false)
	}
	spec, err := pipeline.Decode(cc)
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	e, ok := d.entries[cc.Name]
	d.mu.Unlock()
	if !ok {
		return true, d.Create(ctx, cc, raw)
	}
	halt(e)
	d.mu.Lock()
	defer d.mu.Unlock()
	old, oldRaw := e.spec, e.raw
	e.spec, e.raw = spec, withName(raw, cc.Name)
	saveErr := d.saveLocked()
	if saveErr != nil { // keep running what is saved
		e.spec, e.raw = old, oldRaw
	}
	if !e.stopped {
		d.startLocked(e)
	}
	return false, saveErr
}

// Delete stops a connector and forgets it. Its checkpoint stays where it is.
func (d *Daemon) Delete(ctx context.Context, name string) error {
	if d.Configs != nil {
		return d.clusterDelete(ctx, name)
	}
	e, err := d.entry(name)
	if err != nil {
		return err
	}
	halt(e)
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.entries, name)
	if d.Metrics != nil {
		// Its run has ended; a connector created later under the
		// same name starts its metrics from zero.
		d.Metrics.Forget(name)
	}
	return d.saveLocked()
}

// Pause makes a connector stop reading after its open batch commits.
func (d *Daemon) Pause(name string) error {
	if d.Configs != nil {
		return d.clusterTarget(context.Background(), name, cluster.Paused)
	}
	e, err := d.entry(name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.stopped { // Kafka Connect: pausing a stopped connector starts it paused
		e.stopped = false
		d.startLocked(e)
	}
	e.conn.Pause()
	return d.saveLocked()
}

// Resume resumes a paused or stopped connector.
func (d *Daemon) Resume(name string) error {
	if d.Configs != nil {
		return d.clusterTarget(context.Background(), name, cluster.Running)
	}
	e, err := d.entry(name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.stopped || e.stop == nil {
		e.stopped = false
		d.startLocked(e)
		return d.saveLocked()
	}
	e.conn.Resume()
	return nil
}

// StopConnector stops a connector (KIP-875 STOPPED): its open batch commits or
// aborts, its resources are released, and its offsets may be changed.
func (d *Daemon) StopConnector(ctx context.Context, name string) error {
	if d.Configs != nil {
		return d.clusterTarget(ctx, name, cluster.Stopped)
	}
	e, err := d.entry(name)
	if err != nil {
		return err
	}
	halt(e)
	d.mu.Lock()
	defer d.mu.Unlock()
	e.stopped = true
	return d.saveLocked()
}

// Restart stops and starts a connector (a STOPPED one stays stopped).
func (d *Daemon) Restart(_ context.Context, name string) error {
	e, err := d.entry(name)
	if err != nil {
		return err
	}
	halt(e)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !e.stopped {
		d.startLocked(e)
		if e.target == cluster.Paused {
			e.conn.Pause()
		}
	}
	return nil
}

// Offsets returns a connector's committed checkpoint, read where it lives.
func (d *Daemon) Offsets(ctx context.Context, name string) (connector.Checkpoint, error) {
	store, _, err := d.offsetStore(name)
	if err != nil {
		return nil, err
	}
	return store.Get(ctx)
}

// AlterOffsets sets checkpoints of a STOPPED connector.
func (d *Daemon) AlterOffsets(ctx context.Context, name string, cp connector.Checkpoint) error {
	store, err := d.stoppedOffsetStore(name, "change")
	if err != nil {
		return err
	}
	return store.Alter(ctx, cp)
}

// ResetOffsets forgets a STOPPED connector's checkpoints; resumed, it
// replays its input from the start (Kappa-style reprocessing).
func (d *Daemon) ResetOffsets(ctx context.Context, name string) error {
	store, err := d.stoppedOffsetStore(name, "are reset")
	if err != nil {
		return err
	}
	return store.Reset(ctx)
}

// stoppedOffsetStore is the offset store of a connector that must be
// STOPPED for its offsets to be changed: a running one would race its own
// commits.
func (d *Daemon) stoppedOffsetStore(name, what string) (pipeline.OffsetStore, error) {
	store, stopped, err := d.offsetStore(name)
	if err != nil {
		return nil, err
	}
	if !stopped {
		return nil, fmt.Errorf("%w: %s must be STOPPED (PUT /connectors/%s/stop) before its offsets %s", ErrNotStopped, name, name, what)
	}
	if e, err := d.entry(name); err == nil && e.spec.Processor.Window() != nil {
		// The window state (open windows, watermarks) is the state of
		// the checkpoint it committed with: moved back, the re-read
		// input would be counted twice; moved forward, skipped input
		// would still be missing from windows the state holds open.
		return nil, fmt.Errorf("%w: %s has a window stage, whose state belongs to its checkpoint, so its offsets cannot be changed or reset; "+
			"to process its input again, run the connector under a new group (source.group), which starts with empty state", admin.ErrRefused, name)
	}
	return store, nil
}

func (d *Daemon) offsetStore(name string) (pipeline.OffsetStore, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[name]
	if !ok {
		return nil, false, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if e.broken != nil {
		return nil, false, fmt.Errorf("%w: %s: its definition does not decode on this member: %v", admin.ErrRefused, name, e.broken)
	}
	return pipeline.Offsets(e.spec, d.connectorEnv(name, "offsets")), e.stopped && e.stop == nil, nil
}

func (d *Daemon) entry(name string) (*entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return e, nil
}

// API is the daemon as the admin API drives it.
func (d *Daemon) API() *API { return &API{d} }

// API adapts a Daemon to admin.Connectors: there, Stop stops one connector
// (the daemon's own Stop stops everything).
type API struct{ *Daemon }

// Stop stops one connector; see Daemon.StopConnector.
func (a *API) Stop(ctx context.Context, name string) error { return a.StopConnector(ctx, name) }
