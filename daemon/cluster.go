package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/cluster"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/pipeline"
)

// Cluster mode: the connectors a member runs, their definitions and target
// states (RUNNING, PAUSED, STOPPED) are those of the cluster's config
// topic (cluster.ConfigLog), not of the member's own file or state file.
//
//   - At start the member seeds the topic with its file's connectors that
//     were never written there (a connector deleted through the API stays
//     deleted), then runs what the topic holds: once written, the topic
//     wins over the file.
//   - A lifecycle request to any member's admin API (create, update, pause,
//     resume, stop, delete) is one write to the topic. It is validated
//     first, so a definition that does not decode is never written. The
//     request returns once this member has applied the write; the others
//     apply it as soon as they read it.
//   - Every member applies the topic in its order (reconcile). A changed
//     definition restarts that connector only; a changed target pauses,
//     resumes, stops or starts it. Each member runs every connector with
//     its tasks, and the connectors' consumer groups spread the partitions
//     over the members, so the exactly-once protocols are the same as for
//     one process: a member that starts or stops a connector is one more
//     or one fewer group member, fenced by the group's generation.
//
// Restart is the one request that stays local: it restarts the connector
// on the member asked (a member's failure is its own).

// ConfigStore is the cluster's connector configuration as a member
// applies and changes it; *cluster.ConfigLog is the implementation.
type ConfigStore interface {
	SnapshotAt() (map[string]cluster.Entry, int64)
	Changes() <-chan struct{}
	Put(ctx context.Context, name string, definition json.RawMessage, target cluster.Target) (int64, error)
	Delete(ctx context.Context, name string) (int64, error)
	SeedIfAbsent(ctx context.Context, name string, definition json.RawMessage) (bool, error)
}

// clusterWriteTimeout bounds a lifecycle request that has no deadline of
// its own (pause, resume): the write plus this member applying it.
const clusterWriteTimeout = 30 * time.Second

// startCluster seeds the config topic with the file's connectors, applies
// the topic once (so the connectors run when Start returns), and then
// follows it until the daemon stops.
func (d *Daemon) startCluster(ctx context.Context) error {
	for _, cc := range d.cfg.Connectors {
		if cc.Written == nil {
			return fmt.Errorf("connector %s: no definition to seed the config topic with", cc.Name)
		}
		seeded, err := d.Configs.SeedIfAbsent(ctx, cc.Name, cc.Written)
		if err != nil {
			return err
		}
		if seeded {
			d.log.Info("config topic seeded from the config file", "connector", cc.Name)
		}
	}
	changes := d.Configs.Changes()
	d.reconcile()
	d.mu.Lock()
	runCtx := d.ctx
	d.watchDone = make(chan struct{})
	d.mu.Unlock()
	go func() {
		defer close(d.watchDone)
		for {
			select {
			case <-runCtx.Done():
				return
			case <-changes:
				d.reconcile()
			}
		}
	}()
	return nil
}

// reconcile brings this member's connectors to the config topic's
// snapshot: removed ones stop, new or redefined ones (re)start, changed
// targets apply. Only the watcher (and Start before it) calls it, so
// reconciles never overlap. Stopping a connector commits or aborts its
// open batch, which is why halts happen without d.mu held.
func (d *Daemon) reconcile() {
	want, next := d.Configs.SnapshotAt()
	d.mu.Lock()
	have := make(map[string]*entry, len(d.entries))
	for name, e := range d.entries {
		have[name] = e
	}
	d.mu.Unlock()
	for name, e := range have {
		if _, ok := want[name]; ok {
			continue
		}
		halt(e)
		d.mu.Lock()
		delete(d.entries, name)
		if d.Metrics != nil {
			d.Metrics.Forget(name)
		}
		d.mu.Unlock()
		d.log.Info("connector deleted through the config topic", "connector", name)
	}
	for name, w := range want {
		e := have[name]
		switch {
		case e != nil && e.version == w.Version:
			continue
		case e == nil:
			e = &entry{}
			d.redefine(e, name, w)
			d.mu.Lock()
			d.entries[name] = e
			d.mu.Unlock()
		case !bytes.Equal(e.raw, w.Definition):
			halt(e)
			d.redefine(e, name, w)
		}
		d.setTarget(e, w.Target)
		d.mu.Lock()
		e.version = w.Version
		d.mu.Unlock()
	}
	d.mu.Lock()
	d.applied = max(d.applied, next)
	if d.appliedSignal != nil {
		close(d.appliedSignal)
	}
	d.appliedSignal = make(chan struct{})
	d.mu.Unlock()
}

// redefine gives e (not running) the definition of w. A definition that
// does not decode on this member (the writer validated it, but a ${VAR}
// may be missing here) leaves the connector FAILED with the error.
func (d *Daemon) redefine(e *entry, name string, w cluster.Entry) {
	spec, err := decodeDefinition(name, w)
	d.mu.Lock()
	defer d.mu.Unlock()
	e.spec, e.raw, e.broken, e.finished = spec, w.Definition, err, ""
	if err != nil {
		e.spec = &pipeline.Spec{Conf: config.Connector{Name: name}}
		d.log.Error("connector definition from the config topic does not decode on this member", "connector", name, "version", w.Version, "err", err)
	}
}

func decodeDefinition(name string, w cluster.Entry) (*pipeline.Spec, error) {
	cc, err := config.ParseConnector(fmt.Sprintf("config topic (connector %s, version %d)", name, w.Version), w.Definition)
	if err != nil {
		return nil, err
	}
	spec, err := pipeline.Decode(*cc)
	if err != nil {
		return nil, err
	}
	return spec, clusterable(spec)
}

// clusterable refuses a connector whose source is not a Kafka consumer
// group: every member runs every connector, and only a group shares its
// input among them; a generator would run once per member, each writing
// every event.
func clusterable(spec *pipeline.Spec) error {
	if spec.KafkaSrc != nil {
		return nil
	}
	return config.Errors{{Pos: spec.Conf.Source.Pos, Msg: fmt.Sprintf("connector %s: in cluster mode every member runs every connector, so its source must be a Kafka consumer group, which shares the input among them; a %s source would run once per member (run it in a process without a cluster block)",
		spec.Conf.Name, spec.Conf.Source.Type)}}
}

// setTarget puts e in target state t on this member.
func (d *Daemon) setTarget(e *entry, t cluster.Target) {
	if t == cluster.Stopped {
		halt(e)
		d.mu.Lock()
		e.stopped, e.target = true, t
		d.mu.Unlock()
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e.target = t
	if d.ctx.Err() != nil {
		return // stopping: start nothing new
	}
	if e.stop == nil {
		e.stopped = false
		d.startLocked(e)
	}
	if t == cluster.Paused {
		e.conn.Pause()
	} else {
		e.conn.Resume()
	}
}

// clusterWrite carries out one lifecycle request in cluster mode: it
// writes to the config topic and waits until this member has applied the
// write. A request that fails after the write (this member slow to read
// it back) still took effect for the cluster; the error says so.
func (d *Daemon) clusterWrite(ctx context.Context, name string, write func(context.Context) (int64, error)) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, clusterWriteTimeout)
		defer cancel()
	}
	version, err := write(ctx)
	if err != nil {
		return err
	}
	for {
		d.mu.Lock()
		applied, signal := d.applied, d.appliedSignal
		d.mu.Unlock()
		if applied > version {
			return nil
		}
		select {
		case <-signal:
		case <-ctx.Done():
			return fmt.Errorf("connector %s: written to the config topic (version %d) but not yet applied by this member: %w", name, version, ctx.Err())
		}
	}
}

// clusterEntry is name's entry in the config topic.
func (d *Daemon) clusterEntry(name string) (cluster.Entry, bool) {
	entries, _ := d.Configs.SnapshotAt()
	e, ok := entries[name]
	return e, ok
}

// clusterPut validates cc and writes raw (as JSON, named). mustBeNew is
// Create: ErrExists if the name is taken. Otherwise it is Update, and an
// existing connector keeps its target (as Kafka Connect's config update
// does). created says whether the name was new. Two members creating one
// name at once both write; the later write wins on every member.
func (d *Daemon) clusterPut(ctx context.Context, cc config.Connector, raw []byte, mustBeNew bool) (created bool, err error) {
	spec, err := pipeline.Decode(cc)
	if err != nil {
		return false, err
	}
	if err := clusterable(spec); err != nil {
		return false, err
	}
	def, err := definitionJSON(raw, cc.Name)
	if err != nil {
		return false, err
	}
	old, exists := d.clusterEntry(cc.Name)
	if exists && mustBeNew {
		return false, fmt.Errorf("%w: %s", ErrExists, cc.Name)
	}
	target := cluster.Running
	if exists {
		target = old.Target
	}
	return !exists, d.clusterWrite(ctx, cc.Name, func(ctx context.Context) (int64, error) {
		return d.Configs.Put(ctx, cc.Name, def, target)
	})
}

// clusterTarget writes name's new target, its definition unchanged.
func (d *Daemon) clusterTarget(ctx context.Context, name string, target cluster.Target) error {
	e, ok := d.clusterEntry(name)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return d.clusterWrite(ctx, name, func(ctx context.Context) (int64, error) {
		return d.Configs.Put(ctx, name, e.Definition, target)
	})
}

// clusterDelete writes name's tombstone. Its offsets and sink checkpoints
// stay, as for a delete in one process.
func (d *Daemon) clusterDelete(ctx context.Context, name string) error {
	if _, ok := d.clusterEntry(name); !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return d.clusterWrite(ctx, name, func(ctx context.Context) (int64, error) {
		return d.Configs.Delete(ctx, name)
	})
}

// definitionJSON is an API request's definition as the config topic keeps
// it: JSON (a YAML body is converted), naming its connector, ${VAR}
// references as written.
func definitionJSON(raw []byte, name string) (json.RawMessage, error) {
	if !json.Valid(raw) {
		converted, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("connector %s: definition is neither JSON nor YAML: %w", name, err)
		}
		raw = converted
	}
	return withName(raw, name), nil
}

// errClusterReplay refuses what cluster mode does not carry yet.
var errClusterReplay = fmt.Errorf("%w: replays (Kappa re-processing) are not available in cluster mode yet: a shadow's promotion is kept in admin.state_file, which belongs to one process", admin.ErrRefused)
