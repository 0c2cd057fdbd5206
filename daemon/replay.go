package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/kappa"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/txn"
)

// shadowMeta is what the state file keeps of a replay (Kappa
// re-processing): which live connector the shadow replays, and whether a
// promote was decided. The shadow itself is an ordinary connector of the
// state file, so it resumes from its own checkpoint after a crash.
type shadowMeta struct {
	Of        string `json:"of"`
	Version   int    `json:"version"`
	From      string `json:"from"`
	Promoting bool   `json:"promoting,omitempty"`
}

// maxVersionsTried bounds the search for a free replay version.
const maxVersionsTried = 100

// Replay starts a shadow of connector live: def is its new definition (JSON
// or YAML, nil for live's own), from where it starts ("earliest" or an RFC
// 3339 time). See package kappa for what the shadow renames.
//
// A version whose name is taken, or whose consumer group has committed
// offsets (an earlier replay, deleted), is skipped: resuming that
// checkpoint with other logic would mix two versions in one output.
func (d *Daemon) Replay(ctx context.Context, live string, def []byte, from string) (kappa.Info, error) {
	d.mu.Lock()
	e, ok := d.entries[live]
	switch {
	case !ok:
		d.mu.Unlock()
		return kappa.Info{}, fmt.Errorf("%w: %s", ErrNotFound, live)
	case d.Configs != nil:
		d.mu.Unlock()
		return kappa.Info{}, errClusterReplay
	case d.state == nil:
		d.mu.Unlock()
		return kappa.Info{}, fmt.Errorf("%w: a replay needs admin.state_file, so that the shadow and its promotion survive a restart", admin.ErrRefused)
	case e.shadow != nil:
		d.mu.Unlock()
		return kappa.Info{}, fmt.Errorf("%w: %s is a replay of %s: promote or delete it before replaying it", admin.ErrRefused, live, e.shadow.Of)
	}
	if other := d.shadowOfLocked(live); other != "" {
		d.mu.Unlock()
		return kappa.Info{}, fmt.Errorf("%w: %s already has a replay, %s: promote or delete it first", admin.ErrRefused, live, other)
	}
	liveSpec, liveRaw := e.spec, e.raw
	d.mu.Unlock()

	if def == nil {
		def = liveRaw
	}
	if def == nil { // a connector of the config file: its parsed form
		var err error
		if def, err = yaml.Marshal(liveSpec.Conf); err != nil {
			return kappa.Info{}, fmt.Errorf("replay of %s: %w", live, err)
		}
	}
	base, version := kappa.SplitVersion(live)
	for v := version + 1; v <= version+maxVersionsTried; v++ {
		info, spec, raw, err := d.shadowDefinition(live, def, v, from)
		if err != nil {
			return kappa.Info{}, err
		}
		if !slices.Equal(sorted(spec.KafkaSrc.Topics), sorted(liveSpec.KafkaSrc.Topics)) {
			return kappa.Info{}, fmt.Errorf("%w: a replay reads its live connector's input: source.topics %v differ from %s's %v",
				admin.ErrRefused, spec.KafkaSrc.Topics, live, liveSpec.KafkaSrc.Topics)
		}
		if _, err := d.entry(info.Name); err == nil { // taken
			continue
		}
		cp, err := pipeline.Offsets(spec, d.connectorEnv(info.Name, "offsets")).Get(ctx)
		if err != nil {
			return kappa.Info{}, fmt.Errorf("replay of %s: reading the checkpoint of version %d: %w", live, v, err)
		}
		if len(cp) > 0 {
			d.log.Info("replay version skipped: its group has committed offsets of an earlier replay", "connector", live, "version", v)
			continue
		}
		if err := d.mirrorTopics(ctx, info.Renames); err != nil {
			return kappa.Info{}, err
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if _, taken := d.entries[info.Name]; taken {
			return kappa.Info{}, fmt.Errorf("%w: %s", ErrExists, info.Name)
		}
		if other := d.shadowOfLocked(live); other != "" { // a concurrent replay won
			return kappa.Info{}, fmt.Errorf("%w: %s already has a replay, %s: promote or delete it first", admin.ErrRefused, live, other)
		}
		ne := &entry{spec: spec, raw: raw, shadow: &shadowMeta{Of: live, Version: v, From: info.From}}
		d.entries[info.Name] = ne
		if err := d.saveLocked(); err != nil {
			delete(d.entries, info.Name)
			return kappa.Info{}, err
		}
		d.startLocked(ne)
		d.log.Info("replay started", "connector", live, "shadow", info.Name, "from", info.From)
		info.State = kappa.CatchingUp
		return info, nil
	}
	return kappa.Info{}, fmt.Errorf("%w: versions %d to %d of %s are all taken", admin.ErrRefused, version+1, version+maxVersionsTried, base)
}

// shadowDefinition builds version v of live's shadow from def.
func (d *Daemon) shadowDefinition(live string, def []byte, v int, from string) (kappa.Info, *pipeline.Spec, []byte, error) {
	js := def
	if !json.Valid(js) {
		var err error
		if js, err = yaml.YAMLToJSON(def); err != nil {
			return kappa.Info{}, nil, nil, fmt.Errorf("%w: config: %v", admin.ErrRefused, err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return kappa.Info{}, nil, nil, fmt.Errorf("%w: config: not a JSON object: %v", admin.ErrRefused, err)
	}
	renames, err := kappa.Shadow(m, live, v, from)
	if err != nil {
		return kappa.Info{}, nil, nil, fmt.Errorf("%w: %v", admin.ErrRefused, err)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return kappa.Info{}, nil, nil, err
	}
	name := m["name"].(string)
	cc, err := config.ParseConnector("replay of "+live, raw)
	if err != nil {
		return kappa.Info{}, nil, nil, err
	}
	spec, err := pipeline.Decode(*cc)
	if err != nil {
		return kappa.Info{}, nil, nil, err
	}
	info := kappa.Info{Name: name, Of: live, Version: v, From: spec.KafkaSrc.StartOffset, Renames: renames,
		MaxLag: int64(spec.Conf.BatchMaxRecords)}
	return info, spec, raw, nil
}

// ReplayStatus is the replay named (the shadow, or the live connector it
// replays) with its lag against the live connector.
func (d *Daemon) ReplayStatus(ctx context.Context, name string) (kappa.Info, error) {
	d.mu.Lock()
	shadow, meta, err := d.replayLocked(name)
	d.mu.Unlock()
	if err != nil {
		return kappa.Info{}, err
	}
	info := kappa.Info{Name: shadow, Of: meta.Of, Version: meta.Version, From: meta.From}
	d.mu.Lock()
	if e, ok := d.entries[shadow]; ok {
		info.MaxLag = int64(e.spec.Conf.BatchMaxRecords)
	}
	_, liveExists := d.entries[meta.Of]
	d.mu.Unlock()
	if meta.Promoting {
		info.State = kappa.Promoting
		return info, nil
	}
	if !liveExists {
		return info, fmt.Errorf("%w: %s, which %s replays, no longer exists: promote %s (its readers switch) or delete it",
			admin.ErrRefused, meta.Of, shadow, shadow)
	}
	liveCP, err := d.Offsets(ctx, meta.Of)
	if err != nil {
		return info, fmt.Errorf("replay status: the checkpoint of %s: %w", meta.Of, err)
	}
	shadowCP, err := d.Offsets(ctx, shadow)
	if err != nil {
		return info, fmt.Errorf("replay status: the checkpoint of %s: %w", shadow, err)
	}
	lag := kappa.Measure(liveCP, shadowCP)
	info.Lag = &lag
	info.State = kappa.CatchingUp
	if lag.Total <= info.MaxLag {
		info.State = kappa.CaughtUp
	}
	return info, nil
}

// Promote makes the shadow named take over from the connector it replays:
// once the shadow has caught up (or with force), the decision is saved in
// the state file, readers are switched to the shadow's outputs (kappa
// Cutover: one transaction for a PostgreSQL view, one script for a Redis
// prefix key, a report for Kafka), and the live connector is retired (as
// DELETE: its outputs and checkpoint stay). A crash after the decision is
// saved finishes the promote at the next start; every step is idempotent.
// Neither connector's commits are touched: both kept committing exactly
// once up to the switch, and the shadow goes on.
func (d *Daemon) Promote(ctx context.Context, name string, force bool) (kappa.Info, error) {
	info, err := d.ReplayStatus(ctx, name)
	if err != nil && !(force && errors.Is(err, admin.ErrRefused)) {
		return info, err
	}
	if info.State == kappa.CatchingUp && !force {
		return info, fmt.Errorf("%w: %s is %d records behind %s (at most %d to promote): wait, or promote with force",
			admin.ErrConflict, info.Name, info.Lag.Total, info.Of, info.MaxLag)
	}
	d.mu.Lock()
	e, ok := d.entries[info.Name]
	if !ok || e.shadow == nil {
		d.mu.Unlock()
		return info, fmt.Errorf("%w: %s is not a replay", ErrNotFound, info.Name)
	}
	e.shadow.Promoting = true
	if err := d.saveLocked(); err != nil {
		e.shadow.Promoting = false
		d.mu.Unlock()
		return info, err
	}
	spec := e.spec
	d.mu.Unlock()
	txn.Reach("promote-after-intent")

	switches, err := kappa.Cutover(ctx, spec)
	if err != nil {
		// The decision stands (it is saved): a retry of promote, or
		// the next start, switches again.
		return info, fmt.Errorf("promote of %s: %w (the promote is decided; promote again or restart to finish it)", info.Name, err)
	}
	txn.Reach("promote-after-cutover")
	if live, err := d.entry(info.Of); err == nil {
		halt(live)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.retireLocked(info.Name); err != nil {
		return info, err
	}
	info.State, info.Switches, info.Lag = kappa.Promoted, switches, nil
	d.log.Info("replay promoted", "connector", info.Of, "by", info.Name, "switches", switches)
	return info, nil
}

// finishPromotionsLocked completes, at start, the promotes a crash
// interrupted: readers are switched again and the live connector, not
// started, is retired. A sink that cannot be reached is retried for a
// while, then start fails saying which promote is pending.
func (d *Daemon) finishPromotionsLocked(ctx context.Context) error {
	for name, e := range d.entries {
		if e.shadow == nil || !e.shadow.Promoting {
			continue
		}
		var err error
		for attempt := 0; attempt < 10; attempt++ {
			var switches []kappa.Switch
			if switches, err = kappa.Cutover(ctx, e.spec); err == nil {
				d.log.Info("finished an interrupted promote", "connector", e.shadow.Of, "by", name, "switches", switches)
				break
			}
			d.log.Warn("finishing an interrupted promote failed; retrying", "shadow", name, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
		if err != nil {
			return fmt.Errorf("the promote of %s, decided before the last stop, cannot finish: %w", name, err)
		}
		if err := d.retireLocked(name); err != nil {
			return err
		}
	}
	return nil
}

// retireLocked ends a promote: the live connector (halted or never
// started) is forgotten, as by DELETE, and the shadow becomes an ordinary
// connector.
func (d *Daemon) retireLocked(shadow string) error {
	e, ok := d.entries[shadow]
	if !ok || e.shadow == nil {
		return fmt.Errorf("%w: %s is not a replay", ErrNotFound, shadow)
	}
	live := e.shadow.Of
	if le, ok := d.entries[live]; ok && le.raw != nil && d.state != nil {
		if d.state.Retired == nil {
			d.state.Retired = map[string]json.RawMessage{}
		}
		d.state.Retired[live] = le.raw
	}
	delete(d.entries, live)
	if d.Metrics != nil {
		d.Metrics.Forget(live)
	}
	e.shadow = nil
	return d.saveLocked()
}

// replayLocked finds the replay named: name is the shadow or its live
// connector.
func (d *Daemon) replayLocked(name string) (string, shadowMeta, error) {
	e, ok := d.entries[name]
	if !ok {
		return "", shadowMeta{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if e.shadow != nil {
		return name, *e.shadow, nil
	}
	if s := d.shadowOfLocked(name); s != "" {
		return s, *d.entries[s].shadow, nil
	}
	return "", shadowMeta{}, fmt.Errorf("%w: %s has no replay (POST /connectors/%s/replay starts one)", ErrNotFound, name, name)
}

// shadowOfLocked is the replay of live, or "".
func (d *Daemon) shadowOfLocked(live string) string {
	for n, e := range d.entries {
		if e.shadow != nil && e.shadow.Of == live {
			return n
		}
	}
	return ""
}

func sorted(s []string) []string {
	return slices.Sorted(slices.Values(s))
}
