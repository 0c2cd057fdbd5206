package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/pipeline"
)

// stateFile is what the admin API changed, kept across restarts: connectors
// created or reconfigured through the API (their definitions as sent),
// connectors stopped, and connectors of the config file deleted. The config
// file itself is never rewritten.
type stateFile struct {
	path       string
	Connectors map[string]json.RawMessage `json:"connectors,omitempty"` // name -> definition
	Stopped    []string                   `json:"stopped,omitempty"`
	Deleted    []string                   `json:"deleted,omitempty"`
	// Shadows are the replays (Kappa re-processing) among Connectors.
	Shadows map[string]shadowMeta `json:"shadows,omitempty"`
	// Retired are the definitions of connectors a promote retired
	// (created through the API; the file keeps its own): they no longer
	// run, but their outputs stay, and verify checks them by name.
	Retired map[string]json.RawMessage `json:"retired,omitempty"`
}

func loadState(path string) (*stateFile, error) {
	st := &stateFile{path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("admin.state_file: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("admin.state_file %s: %w", path, err)
	}
	return st, nil
}

// applyStateLocked replays the saved API changes over the config file's
// connectors.
func (d *Daemon) applyStateLocked() error {
	st := d.state
	for _, name := range st.Deleted {
		delete(d.entries, name)
	}
	var errs []error
	for name, raw := range st.Connectors {
		cc, err := config.ParseConnector(d.state.path+" ("+name+")", raw)
		if err == nil {
			var spec *pipeline.Spec
			if spec, err = pipeline.Decode(*cc); err == nil {
				d.entries[name] = &entry{spec: spec, raw: raw}
			}
		}
		errs = append(errs, err)
	}
	for _, name := range st.Stopped {
		if e, ok := d.entries[name]; ok {
			e.stopped = true
		}
	}
	for name, m := range st.Shadows {
		if e, ok := d.entries[name]; ok {
			e.shadow = &m
		}
	}
	return config.Merge(errs...)
}

// saveLocked writes the API's changes to the state file, atomically
// (temporary file + rename), if one is configured.
func (d *Daemon) saveLocked() error {
	if d.state == nil {
		return nil
	}
	st := d.state
	st.Connectors = map[string]json.RawMessage{}
	st.Stopped = nil
	fromFile := map[string]bool{}
	for _, cc := range d.cfg.Connectors {
		fromFile[cc.Name] = true
	}
	st.Deleted = nil
	st.Shadows = map[string]shadowMeta{}
	for name := range fromFile {
		if _, ok := d.entries[name]; !ok {
			st.Deleted = append(st.Deleted, name)
		}
	}
	for name, e := range d.entries {
		if e.raw != nil {
			st.Connectors[name] = e.raw
		}
		if e.stopped {
			st.Stopped = append(st.Stopped, name)
		}
		if e.shadow != nil {
			st.Shadows[name] = *e.shadow
		}
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := st.path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(st.path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, st.path)
}

// withName makes sure a JSON definition names its connector, as the state
// file needs to parse it back on its own (a Kafka Connect request carries
// the name beside the config, not in it). Non-JSON definitions are kept.
func withName(raw []byte, name string) []byte {
	var m map[string]any
	if raw == nil || json.Unmarshal(raw, &m) != nil {
		return raw
	}
	if _, ok := m["name"]; ok {
		return raw
	}
	m["name"] = name
	out, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return out
}

// Definition is connector name's definition as a daemon running cfg would
// hold it: the one saved in admin.state_file (created or changed through
// the API, a Kappa replay among them) if there is one, else the config
// file's. Tools (verify) use it to find a connector the file does not
// list. ok is false if neither has it.
func Definition(cfg *config.Config, name string) (cc *config.Connector, ok bool, err error) {
	if path := cfg.Admin.StateFile; path != "" {
		st, err := loadState(path)
		if err != nil {
			return nil, false, err
		}
		raw, found := st.Connectors[name]
		if !found {
			raw, found = st.Retired[name]
		}
		if found {
			cc, err := config.ParseConnector(path+" ("+name+")", raw)
			return cc, err == nil, err
		}
	}
	for i := range cfg.Connectors {
		if cfg.Connectors[i].Name == name {
			return &cfg.Connectors[i], true, nil
		}
	}
	return nil, false, nil
}
