package files

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/connectd/connectd/connector"
)

// Layout of the sink's own files under the root (all under names starting
// with "_", which hive-partitioned readers skip):
//
//	_connectd/lock                       the flock that serializes processes
//	_connectd/manifest-<group>.json      one consumer group's manifest
//	_connectd/manifest-+at_least_once.json  the at_least_once writer's
//	_connectd/staging/<group>/…jsonl     staged rows not rolled into a file yet
//	_connectd/tmp/…                      files written, not yet renamed
//	_dead_letters/<connector>+<topic>+<partition>+<first>-<last>.jsonl
const (
	metaDir        = "_connectd"
	deadLetterDir  = "_dead_letters"
	lockFile       = metaDir + "/lock"
	tmpDir         = metaDir + "/tmp"
	stagingDir     = metaDir + "/staging"
	manifestPrefix = "manifest-"
	// atLeastOnceKey is the at_least_once writer's group key: escapeName
	// never writes a '+', so no consumer group's key can be it.
	atLeastOnceKey = "+at_least_once"
)

// manifestVersion is the manifest format this code writes and reads.
const manifestVersion = 1

// manifest is one group's committed state. Replacing the file (write a
// temporary, fsync, rename, fsync the directory) is the commit point of
// every change: the rows staged and the files rolled become part of the
// output, and the checkpoints move, in that one rename.
type manifest struct {
	Version int `json:"version"`
	// Seq counts the manifest's writes; staged and temporary file names
	// carry the seq of the write that created them, so names never repeat.
	Seq        int64        `json:"seq"`
	Partitions []*partState `json:"partitions"`
	// Files are the committed data and dead-letter files, relative to the
	// root, in the order they were committed.
	Files []fileEntry `json:"files"`
	// Pending are renames decided by this manifest and maybe not done yet
	// (a crash right after the commit point): whoever takes the lock next
	// does them before anything else.
	Pending []rename `json:"pending,omitempty"`
}

// partState is one input partition's claim, checkpoint and staged rows.
type partState struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Epoch is the claim epoch, raised by every claim.
	Epoch int64 `json:"epoch"`
	// Next is the checkpoint, or connector.NoCheckpoint.
	Next   int64     `json:"next"`
	Staged []segment `json:"staged,omitempty"`
}

func (p *partState) tp() connector.TopicPartition {
	return connector.TopicPartition{Topic: p.Topic, Partition: p.Partition}
}

// segment is rows staged for one directory: the first Bytes bytes of
// File (a staging file, relative to the root) are committed rows; bytes
// beyond are from a commit that did not happen, cut off before the next
// append.
type segment struct {
	Dir   string `json:"dir"`
	File  string `json:"file"`
	Bytes int64  `json:"bytes"`
	Rows  int64  `json:"rows"`
	First int64  `json:"first"`
	Last  int64  `json:"last"`
	// Since is when the first row was staged (Unix milliseconds), for
	// roll.max_interval.
	Since int64 `json:"since"`
}

// fileEntry is one committed file.
type fileEntry struct {
	Path      string `json:"path"`
	Rows      int64  `json:"rows"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	First     int64  `json:"first"`
	Last      int64  `json:"last"`
	// DeadLetters marks a dead-letter file (JSON Lines in _dead_letters).
	DeadLetters bool `json:"dead_letters,omitempty"`
}

// rename moves a written file (a temporary, or a staging file that is
// already a JSON Lines file) to its final path.
type rename struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// part returns tp's state, or nil.
func (m *manifest) part(tp connector.TopicPartition) *partState {
	for _, p := range m.Partitions {
		if p.Topic == tp.Topic && p.Partition == tp.Partition {
			return p
		}
	}
	return nil
}

// partOrNew returns tp's state, adding it (no epoch, no checkpoint).
func (m *manifest) partOrNew(tp connector.TopicPartition) *partState {
	if p := m.part(tp); p != nil {
		return p
	}
	p := &partState{Topic: tp.Topic, Partition: tp.Partition, Next: connector.NoCheckpoint}
	m.Partitions = append(m.Partitions, p)
	slices.SortFunc(m.Partitions, func(a, b *partState) int { return a.tp().Compare(b.tp()) })
	return p
}

// checkpoint returns the stored checkpoints.
func (m *manifest) checkpoint() connector.Checkpoint {
	cp := connector.Checkpoint{}
	for _, p := range m.Partitions {
		if p.Next != connector.NoCheckpoint {
			cp[p.tp()] = p.Next
		}
	}
	return cp
}

// clone returns a deep copy, to build the next manifest in while the
// current one stays what is on disk.
func (m *manifest) clone() *manifest {
	c := &manifest{Version: m.Version, Seq: m.Seq, Files: slices.Clone(m.Files), Pending: slices.Clone(m.Pending)}
	for _, p := range m.Partitions {
		q := *p
		q.Staged = slices.Clone(p.Staged)
		c.Partitions = append(c.Partitions, &q)
	}
	return c
}

// addFile records f, replacing an entry of the same path (the same input
// range written again after its offsets were reset: the new file replaced
// the old one on disk).
func (m *manifest) addFile(f fileEntry) {
	m.Files = slices.DeleteFunc(m.Files, func(e fileEntry) bool { return e.Path == f.Path })
	m.Files = append(m.Files, f)
}

// lists reports whether the manifest lists a file at path.
func (m *manifest) lists(path string) bool {
	return slices.ContainsFunc(m.Files, func(e fileEntry) bool { return e.Path == path })
}

// escapeName keeps [A-Za-z0-9._-] and writes every other byte as %XX, so
// a connector, topic or group name can add neither a path separator nor a
// '+' (the field separator of file names) to a name.
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	if s == "" || s == "." || s == ".." {
		return "%" + b.String() // never empty, never a directory reference
	}
	return b.String()
}

// groupKey is the file-name form of a consumer group.
func groupKey(group string) string { return escapeName(group) }

func manifestPath(key string) string { return metaDir + "/" + manifestPrefix + key + ".json" }

// fileName is a data or dead-letter file's name: from the connector, the
// input partition and the offsets of its first and last rows, so it is
// unique among the exactly-once files of a directory and the same input
// range gives the same name again. n > 0 adds "+c<n>": the
// at_least_once writer's second, third... file of one range (see
// commitWork.finalPath).
func fileName(connectorName string, tp connector.TopicPartition, first, last int64, n int, ext string) string {
	name := escapeName(connectorName) + "+" + escapeName(tp.Topic) + "+" + strconv.Itoa(int(tp.Partition)) +
		"+" + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10)
	if n > 0 {
		name += "+c" + strconv.Itoa(n)
	}
	return name + "." + ext
}

// ownFile reports whether name (a base name) is a data file of the
// connector: the pattern fileName writes.
func ownFile(connectorName, name string) bool {
	rest, ok := strings.CutPrefix(name, escapeName(connectorName)+"+")
	if !ok {
		return false
	}
	parts := strings.Split(rest, "+")
	if len(parts) != 3 && len(parts) != 4 {
		return false
	}
	// The extension follows the last field (a topic may hold dots).
	parts[len(parts)-1], _, ok = strings.Cut(parts[len(parts)-1], ".")
	if !ok {
		return false
	}
	first, last, ok := strings.Cut(parts[2], "-")
	_, err1 := strconv.ParseInt(parts[1], 10, 32)
	_, err2 := strconv.ParseInt(first, 10, 64)
	_, err3 := strconv.ParseInt(last, 10, 64)
	if len(parts) == 4 {
		c, found := strings.CutPrefix(parts[3], "c")
		n, err := strconv.Atoi(c)
		ok = ok && found && err == nil && n > 0
	}
	return ok && err1 == nil && err2 == nil && err3 == nil
}

// readManifest reads the manifest at rel under root; a missing one is an
// empty manifest (seq 0).
func readManifest(root, rel string) (*manifest, error) {
	b, err := os.ReadFile(filepath.Join(root, rel))
	if errors.Is(err, fs.ErrNotExist) {
		return &manifest{Version: manifestVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	m := &manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("manifest %s is corrupt: %w", rel, err)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("manifest %s has version %d; this connectd reads version %d", rel, m.Version, manifestVersion)
	}
	return m, nil
}

// writeManifest replaces the manifest at rel atomically: a temporary file
// in the same directory, written and fsynced, renamed over it, and the
// directory fsynced so the rename survives a machine crash. A reader (or
// a crash) sees the old manifest or the new one, whole. renamed reports
// whether the rename was done: after it, a failure leaves the outcome
// unknown (the rename may not be durable yet); before it, nothing changed.
func writeManifest(root, rel string, m *manifest, sync bool, reach func(string) error) (renamed bool, err error) {
	m.Version = manifestVersion
	b, err := json.Marshal(m)
	if err != nil {
		return false, err
	}
	final := filepath.Join(root, rel)
	tmp := final + ".tmp"
	if err := writeFile(tmp, b, sync); err != nil {
		return false, err
	}
	if reach != nil {
		if err := reach("before-manifest-rename"); err != nil {
			return false, err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return false, err
	}
	if sync {
		if err := syncDir(filepath.Dir(final)); err != nil {
			return true, err
		}
	}
	return true, nil
}

// writeFile writes b to a new file at path, fsynced when sync.
func writeFile(path string, b []byte, sync bool) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// syncDir fsyncs a directory, making the entries created, renamed or
// removed in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// mkdirAll creates dir and its missing parents under root, fsyncing each
// parent of a directory it created (the new entry must be durable before a
// file renamed into it is).
func mkdirAll(root, dir string, sync bool) error {
	if dir == "" || dir == "." {
		return nil
	}
	parent := filepath.Dir(dir)
	if _, err := os.Stat(filepath.Join(root, dir)); err == nil {
		return nil
	}
	if err := mkdirAll(root, parent, sync); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(root, dir), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if sync {
		return syncDir(filepath.Join(root, parent))
	}
	return nil
}
