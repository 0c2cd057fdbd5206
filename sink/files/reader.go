package files

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/connectd/connectd/connector"
)

// Output is what a group committed, read in one consistent view (under
// the directory's lock): the checkpoint and every row, by file.
type Output struct {
	// Checkpoint is the group's stored checkpoint.
	Checkpoint connector.Checkpoint
	// Files are the committed data files, as the manifest lists them.
	Files []File
	// Staged are the committed rows not rolled into a file yet (Path is
	// the staging file, Dir where its file will go); outside readers do
	// not see them until they roll.
	Staged []File
	// DeadLetters are the committed dead-letter files.
	DeadLetters []File
	// Unlisted are data files of the connector in the tree that no
	// manifest lists: an outside reader would count their rows, so a
	// check must too. Recovery deletes them; there should be none.
	Unlisted []File
}

// File is one file's rows.
type File struct {
	// Path is relative to the root.
	Path string
	// Dir is the partition directory ("" without partitioning).
	Dir  string
	Rows []Row
}

// Row is one row's identity.
type Row struct {
	EventID string
	Origin  connector.Origin
}

// ReadOutput reads what group committed under cfg.Path for connectorName
// (the exactly_once store's output).
func ReadOutput(ctx context.Context, cfg Config, connectorName, group string) (*Output, error) {
	return readOutput(ctx, cfg, connectorName, groupKey(group))
}

// ReadAtLeastOnceOutput reads what the at_least_once writer wrote under
// cfg.Path for connectorName (its checkpoint is the consumer group's).
func ReadAtLeastOnceOutput(ctx context.Context, cfg Config, connectorName string) (*Output, error) {
	return readOutput(ctx, cfg, connectorName, atLeastOnceKey)
}

func readOutput(ctx context.Context, cfg Config, connectorName, key string) (*Output, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	root := cfg.Path
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return &Output{Checkpoint: connector.Checkpoint{}}, nil // nothing written yet
	}
	l, err := lock(ctx, root, cfg.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	s := NewStore(cfg, Options{Connector: connectorName})
	manifests, err := s.readManifests()
	if err != nil {
		return nil, err
	}
	m := manifests[key]
	if m == nil {
		m = &manifest{}
	}
	out := &Output{Checkpoint: m.checkpoint()}
	// A pending file may still be at its temporary name (a crash after the
	// commit point): it is committed all the same.
	where := map[string]string{}
	for _, r := range m.Pending {
		if _, err := os.Stat(filepath.Join(root, r.From)); err == nil {
			where[r.To] = r.From
		}
	}
	for _, f := range m.Files {
		at := f.Path
		if from, ok := where[f.Path]; ok {
			at = from
		}
		rows, err := readRows(filepath.Join(root, at), -1)
		if err != nil {
			return nil, err
		}
		file := File{Path: f.Path, Dir: dirOf(f.Path), Rows: rows}
		if f.DeadLetters {
			file.Dir = ""
			out.DeadLetters = append(out.DeadLetters, file)
		} else {
			out.Files = append(out.Files, file)
		}
	}
	for _, p := range m.Partitions {
		for _, g := range p.Staged {
			rows, err := readRows(filepath.Join(root, g.File), g.Bytes)
			if err != nil {
				return nil, err
			}
			out.Staged = append(out.Staged, File{Path: g.File, Dir: g.Dir, Rows: rows})
		}
	}
	listed := map[string]bool{}
	for _, m := range manifests {
		for _, f := range m.Files {
			listed[f.Path] = true
		}
	}
	unlisted, err := s.unlisted(listed)
	if err != nil {
		return nil, err
	}
	for _, rel := range unlisted {
		rows, err := readRows(filepath.Join(root, rel), -1)
		if err != nil {
			return nil, err
		}
		out.Unlisted = append(out.Unlisted, File{Path: rel, Dir: dirOf(rel), Rows: rows})
	}
	return out, nil
}

// dirOf is a data file's partition directory.
func dirOf(rel string) string {
	if d := filepath.ToSlash(filepath.Dir(rel)); d != "." {
		return d
	}
	return ""
}

// readRows reads the identities of a file's rows: Parquet by its
// extension, JSON Lines otherwise (data, staged or dead-letter rows),
// only the first limit bytes when limit >= 0.
func readRows(path string, limit int64) ([]Row, error) {
	if strings.HasSuffix(path, "."+FormatParquet) {
		return readParquetRows(path)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && limit == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if limit >= 0 {
		r = io.LimitReader(f, limit)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<30)
	var rows []Row
	for sc.Scan() {
		var line struct {
			EventID   string `json:"event_id"`
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("%s, row %d: %w", path, len(rows)+1, err)
		}
		rows = append(rows, Row{EventID: line.EventID, Origin: connector.Origin{Topic: line.Topic, Partition: line.Partition, Offset: line.Offset}})
	}
	return rows, sc.Err()
}
