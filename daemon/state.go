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
