package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/connectd/connectd/connector"
)

// recover brings the directory to what its manifests say, under the lock,
// before a claim. Whatever a crash interrupted, every manifest is whole
// (it is replaced by a rename), so it is the truth:
//
//  1. Renames a manifest decided and that were not done (the crash came
//     after the commit point) are done.
//  2. Every staging file is cut to the length its manifest committed
//     (bytes beyond are from a commit that did not reach its commit
//     point); staging files no manifest names are deleted.
//  3. Temporary files (_connectd/tmp, manifest temporaries) are deleted:
//     after step 1 none is named by a manifest.
//  4. Data and dead-letter files of this connector that no manifest lists
//     are deleted. With the manifest written before the renames they
//     cannot come from this sink's own crashes; they would come from an
//     older version's or a tool's, and a reader would count their rows.
//
// A path that holds this connector's files but no manifest at all is
// refused (Fatal) rather than swept: its _connectd directory was removed,
// and deleting every file would be a surprise.
func (s *Store) recover() error {
	root := s.root()
	manifests, err := s.readManifests()
	if err != nil {
		return err
	}
	named := map[string]bool{} // files a manifest names, relative to the root
	listed := map[string]bool{}
	for key, m := range manifests {
		if err := s.rollForward(m); err != nil {
			return err
		}
		if len(m.Pending) > 0 {
			m.Pending = nil
			m.Seq++
			if _, err := writeManifest(root, manifestPath(key), m, s.cfg.fsync(), nil); err != nil {
				return connector.NewCommitError(connector.Abortable, "recover", err)
			}
		}
		for _, p := range m.Partitions {
			for _, g := range p.Staged {
				named[g.File] = true
				if err := cutStaging(filepath.Join(root, g.File), g.Bytes, s.cfg.fsync()); err != nil {
					return err
				}
			}
		}
		for _, f := range m.Files {
			listed[f.Path] = true
		}
	}
	// 2 and 3: unnamed staging files, temporaries.
	var removed []string
	for _, dir := range []string{stagingDir, tmpDir} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			if !named[filepath.ToSlash(rel)] {
				removed = append(removed, rel)
			}
			return nil
		})
		if err != nil {
			return connector.NewCommitError(connector.Abortable, "recover", err)
		}
	}
	tmps, _ := filepath.Glob(filepath.Join(root, metaDir, "*.tmp"))
	for _, t := range tmps {
		rel, _ := filepath.Rel(root, t)
		removed = append(removed, rel)
	}
	// 4: orphans of this connector.
	orphans, err := s.unlisted(listed)
	if err != nil {
		return connector.NewCommitError(connector.Abortable, "recover", err)
	}
	if len(orphans) > 0 && len(manifests) == 0 {
		return connector.NewCommitError(connector.Fatal, "recover", fmt.Errorf(
			"%s holds %d files of connector %s (such as %s) but no manifest in %s: they were written by a sink whose manifests are gone; move them away or use another path",
			root, len(orphans), s.opts.Connector, orphans[0], metaDir))
	}
	for _, o := range orphans {
		s.log.Warn("deleting a file no manifest lists", "file", o)
	}
	for _, rel := range append(removed, orphans...) {
		if err := os.Remove(filepath.Join(root, rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return connector.NewCommitError(connector.Abortable, "recover", err)
		}
	}
	return nil
}

// readManifests reads every manifest under the root, by group key.
func (s *Store) readManifests() (map[string]*manifest, error) {
	paths, err := filepath.Glob(filepath.Join(s.root(), metaDir, manifestPrefix+"*.json"))
	if err != nil {
		return nil, err
	}
	out := map[string]*manifest{}
	for _, p := range paths {
		rel, _ := filepath.Rel(s.root(), p)
		m, err := readManifest(s.root(), filepath.ToSlash(rel))
		if err != nil {
			return nil, classifyRead("recover", err)
		}
		key := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), manifestPrefix), ".json")
		out[key] = m
	}
	return out, nil
}

// cutStaging truncates a staging file to its committed length. A file
// shorter than that lost committed rows: Fatal.
func cutStaging(path string, size int64, sync bool) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && size == 0:
		return nil
	case err != nil:
		return connector.NewCommitError(connector.Fatal, "recover", fmt.Errorf("staged rows lost: %w", err))
	case st.Size() < size:
		return connector.NewCommitError(connector.Fatal, "recover",
			fmt.Errorf("staged rows lost: %s has %d bytes, its manifest committed %d", path, st.Size(), size))
	case st.Size() == size:
		return nil
	}
	if err := truncateTo(path, size, sync); err != nil {
		return connector.NewCommitError(connector.Abortable, "recover", err)
	}
	return nil
}

// unlisted returns the data and dead-letter files of this connector (by
// name) that listed does not hold, relative to the root. It walks the
// partition directories and _dead_letters, and skips every other
// directory whose name starts with "_" or ".", as readers do.
func (s *Store) unlisted(listed map[string]bool) ([]string, error) {
	root := s.root()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		name := d.Name()
		if d.IsDir() {
			if rel != "." && rel != deadLetterDir && (strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if ownFile(s.opts.Connector, name) && !listed[rel] {
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}
