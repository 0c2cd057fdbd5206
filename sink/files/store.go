package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/txn"
)

// Options are what a store needs from the connector that runs it.
type Options struct {
	// Connector names the connector: its files are named after it, and
	// recovery deletes only its own orphans. Default "connectd".
	Connector string
	// DLQTopic is the connector's dead-letter topic ("" with
	// errors.tolerance none): records bound for it, and records the sink
	// cannot write, go to the dead-letter files in the same commit.
	DLQTopic string
	Log      *slog.Logger
}

// Store is the exactly-once file sink (connector.SinkStore and
// connector.CheckpointAdmin); see Commit for the protocol. Every method
// takes the directory's lock (lock.go), so stores in any number of
// processes may share a path.
type Store struct {
	cfg  Config
	err  error // the config's validation error, returned by every call
	opts Options
	log  *slog.Logger
	// hook, for tests, runs at each named step of a commit; an error stops
	// the commit right there, as a crash would (see failpoint.go).
	hook func(point string) error
	now  func() time.Time

	mu     sync.Mutex
	held   map[string]map[connector.TopicPartition]int64 // group → partition → epoch of this store's latest claim
	closed bool
}

var (
	_ connector.SinkStore       = (*Store)(nil)
	_ connector.CheckpointAdmin = (*Store)(nil)
)

// NewStore returns a store writing under cfg.Path. It touches nothing on
// disk (the first claim creates what is missing), so a directory that
// cannot be written yet fails the first commit, which is retried, not the
// start.
func NewStore(cfg Config, opts Options) *Store {
	err := cfg.Validate()
	if opts.Connector == "" {
		opts.Connector = "connectd"
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Store{cfg: cfg, err: err, opts: opts, log: opts.Log.With("sink", "files", "path", cfg.Path),
		now: time.Now, held: map[string]map[connector.TopicPartition]int64{}}
}

// root is the output directory.
func (s *Store) root() string { return s.cfg.Path }

func (s *Store) usable(op string) error {
	if s.err != nil {
		return connector.NewCommitError(connector.Fatal, op, s.err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return connector.NewCommitError(connector.Abortable, op, errors.New("files sink: store closed"))
	}
	return nil
}

// reach runs the test hook, and the process failure points of package txn
// (CONNECTD_KILL_AT=files-<point>, CONNECTD_FREEZE_AT), at a named step
// of a commit: staged (rows appended to staging files), rolled (files
// written to _connectd/tmp), before-manifest-rename (the new manifest
// written beside the old), committed (the commit point passed, nothing
// renamed yet) and published-one (one file renamed, the others not). A
// claim reaches before-manifest-rename too.
func (s *Store) reach(point string) error {
	txn.Reach("files-" + point)
	if s.hook != nil {
		if err := s.hook(point); err != nil {
			return &stopped{err}
		}
	}
	return nil
}

// stopped is a test hook's stop: the step returns it at once, and
// nothing after it runs, as after a crash at that point.
type stopped struct{ err error }

func (e *stopped) Error() string { return e.err.Error() }
func (e *stopped) Unwrap() error { return e.err }

// Claim takes ownership of tps for group.
//
//   - Atomic: under the directory lock, recovery first (recover.go: the
//     last commit's renames rolled forward, staged rows cut to what the
//     manifest committed, temporary and orphan files deleted), then one
//     manifest replacement raises every partition's epoch and is read
//     back as the claims: all of tps or none.
//   - Fencing: the raised epochs fence every earlier claimant's commits.
//     A partition at epoch MaxInt64 fails the claim (Fatal) with the
//     manifest untouched: no epoch wraps, none is raised.
//   - Unknown outcome (the manifest renamed but its directory's fsync
//     failed): the error is returned; a claim that did happen only raised
//     epochs, and the next claim raises them again.
func (s *Store) Claim(ctx context.Context, group string, tps []connector.TopicPartition) (connector.Claims, error) {
	if err := s.usable("claim"); err != nil {
		return nil, err
	}
	l, err := lock(ctx, s.root(), s.cfg.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	if err := s.recover(); err != nil {
		return nil, err
	}
	key := groupKey(group)
	m, err := readManifest(s.root(), manifestPath(key))
	if err != nil {
		return nil, classifyRead("claim", err)
	}
	next := m.clone()
	next.Seq++
	claims := connector.Claims{}
	for _, tp := range tps {
		p := next.partOrNew(tp)
		if p.Epoch == math.MaxInt64 {
			// The next epoch would wrap below every one given; the
			// manifest is not replaced, so no epoch is raised.
			return nil, connector.NewCommitError(connector.Fatal, "claim", fmt.Errorf("partition %s: claim epochs exhausted; no partition was claimed", tp))
		}
		p.Epoch++
		claims[tp] = connector.PartitionClaim{Epoch: p.Epoch, Next: p.Next}
	}
	if renamed, err := writeManifest(s.root(), manifestPath(key), next, s.cfg.fsync(), s.reach); err != nil {
		kind := connector.Abortable
		if renamed {
			kind = connector.CommitUnknown
		}
		return nil, connector.NewCommitError(kind, "claim", err)
	}
	s.mu.Lock()
	h := s.held[group]
	if h == nil {
		h = map[connector.TopicPartition]int64{}
		s.held[group] = h
	}
	for tp, c := range claims {
		h[tp] = c.Epoch
	}
	s.mu.Unlock()
	return claims, nil
}

// Commit writes recs and moves the checkpoints of to, exactly once.
//
// Order, under the directory lock:
//  1. Read the group's manifest; compare every partition of to: its epoch
//     must be epochs[tp] and its checkpoint from[tp] (absent: none).
//     Otherwise the batch is Fenced, with nothing on disk touched.
//  2. Roll forward renames a previous commit decided and did not finish.
//  3. Append the batch's rows to their partitions' staging files (cut
//     first to the lengths the manifest committed) and fsync them.
//  4. Write every staged segment due to roll (roll.max_bytes or
//     roll.max_interval reached, in any partition of the group: rolling
//     rows already committed changes no output) as a file in _connectd/tmp
//     (a Parquet file; a JSON Lines segment is its staging file as is),
//     and the batch's dead letters as JSON Lines files, fsynced.
//  5. Replace the manifest (write, fsync, rename, fsync the directory):
//     THE COMMIT POINT. It holds the new checkpoints and epochs, the staged
//     lengths, the new files, and the renames that publish them.
//  6. Rename each new file to its final name (creating and fsyncing its
//     directories), fsync those directories, delete rolled staging files.
//
// Guarantees:
//   - Atomic: the manifest rename is one atomic step, so the rows, the
//     files and the checkpoint are committed together or not at all. A
//     file is renamed to its final name only after the manifest that lists
//     it is durable, so an outside reader of the directory never sees a
//     file that is not committed, and never a row twice (staged rows are
//     invisible until their file rolls).
//   - Abort (any error before step 5): nothing is committed. Bytes
//     appended past a staging file's committed length are cut off at its
//     next append or claim, temporary files are deleted by the next claim;
//     the error is Abortable (a record the sink cannot write, with no
//     dead-letter topic, is Fatal).
//   - Fencing: checked under the lock before anything is written, so a
//     zombie writes nothing, not even a temporary file.
//   - Unknown outcome: the manifest was renamed but its directory's fsync
//     failed (the rename may not survive a machine crash): CommitUnknown,
//     and the next claim reads which manifest holds. A failed rename(2)
//     changed nothing: Abortable.
//   - A failure in step 6 is logged and the commit succeeds: the manifest
//     lists the renames, and the next commit or claim does them.
func (s *Store) Commit(ctx context.Context, group string, epochs map[connector.TopicPartition]int64, recs []*connector.Record, from, to connector.Checkpoint) error {
	check := func(m *manifest) error {
		for tp := range to {
			p := m.part(tp)
			switch {
			case p == nil || p.Epoch != epochs[tp]:
				stored := int64(0)
				if p != nil {
					stored = p.Epoch
				}
				return fmt.Errorf("partition %s is claimed at epoch %d, this commit holds epoch %d", tp, stored, epochs[tp])
			}
			want, ok := from[tp]
			if !ok {
				want = connector.NoCheckpoint
			}
			if p.Next != want {
				return fmt.Errorf("partition %s: stored checkpoint %d, the commit expects %d", tp, p.Next, want)
			}
		}
		return nil
	}
	return s.commit(ctx, "commit", groupKey(group), batch{recs: recs, to: to, check: check})
}

// batch is one change to a group's manifest.
type batch struct {
	recs []*connector.Record
	// to are the new checkpoints (nil: none move); records must be of
	// these partitions, when set.
	to connector.Checkpoint
	// check compares the manifest before anything is written; its error
	// is Fenced.
	check func(*manifest) error
	// edit changes the manifest after the checks (the offsets API).
	edit func(*manifest)
	// rollAll rolls every staged segment of the partitions it accepts.
	rollAll func(*partState) bool
}

// output is one commit's rows and dead letters, per partition.
type output struct {
	rows map[connector.TopicPartition][]stagedRow
	dlq  map[connector.TopicPartition][]deadLetter
}

type stagedRow struct {
	mapped
	offset int64
}

type deadLetter struct {
	offset int64
	line   []byte
}

// split maps the batch's records before anything is locked or written: a
// record the sink cannot write fails the batch here (Fatal) unless it can
// be dead-lettered.
func (s *Store) split(b batch) (output, error) {
	out := output{rows: map[connector.TopicPartition][]stagedRow{}, dlq: map[connector.TopicPartition][]deadLetter{}}
	dlq := s.opts.DLQTopic
	for _, r := range b.recs {
		tp := connector.TopicPartition{Topic: r.Origin.Topic, Partition: r.Origin.Partition}
		switch r.Kind {
		case connector.ControlRecord:
			continue
		case connector.StateRecord:
			return out, connector.NewCommitError(connector.Fatal, "commit", errors.New("the files sink keeps no window state"))
		}
		if b.to != nil {
			if _, ok := b.to[tp]; !ok {
				return out, connector.NewCommitError(connector.Fatal, "commit",
					fmt.Errorf("record %s is of a partition the batch's checkpoint does not move", r.Origin))
			}
		}
		if dlq != "" && r.Topic == dlq {
			out.dlq[tp] = append(out.dlq[tp], deadLetter{r.Origin.Offset, deadLetterLine(r, nil)})
			continue
		}
		m, err := s.cfg.mapRecord(r)
		if err != nil {
			if dlq == "" {
				return out, connector.NewCommitError(connector.Fatal, "commit",
					&connector.RecordError{Origin: r.Origin, Stage: "sink", Err: err})
			}
			out.dlq[tp] = append(out.dlq[tp], deadLetter{r.Origin.Offset, deadLetterLine(r, err)})
			continue
		}
		out.rows[tp] = append(out.rows[tp], stagedRow{m, r.Origin.Offset})
	}
	return out, nil
}

// commit runs one change to the manifest at key (see Commit for the order
// and the guarantees).
func (s *Store) commit(ctx context.Context, op, key string, b batch) error {
	if err := s.usable(op); err != nil {
		return err
	}
	return s.apply(ctx, op, key, b)
}

// apply is commit on a store known to be usable.
func (s *Store) apply(ctx context.Context, op, key string, b batch) error {
	out, err := s.split(b)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return connector.NewCommitError(connector.Abortable, op, err)
	}
	l, err := lock(ctx, s.root(), s.cfg.LockTimeout)
	if err != nil {
		return err
	}
	defer l.unlock()
	m, err := readManifest(s.root(), manifestPath(key))
	if err != nil {
		return classifyRead(op, err)
	}
	if b.check != nil {
		if err := b.check(m); err != nil {
			return connector.NewCommitError(connector.Fenced, op, err)
		}
	}
	// 2. Renames a previous commit decided are done first: the files
	// this commit rolls may land in the same directories.
	if err := s.rollForward(m); err != nil {
		return err
	}
	next := m.clone()
	next.Seq++
	next.Pending = nil
	if b.edit != nil {
		b.edit(next)
	}
	w := &commitWork{s: s, key: key, m: next}
	// 3. Stage.
	if err := w.stage(out.rows); err != nil {
		return connector.NewCommitError(connector.Abortable, op, err)
	}
	if err := s.reach("staged"); err != nil {
		return err
	}
	// 4. Roll what is due, write the dead letters.
	if err := w.roll(b.rollAll); err != nil {
		return connector.NewCommitError(connector.Abortable, op, err)
	}
	if err := w.deadLetters(out.dlq); err != nil {
		return connector.NewCommitError(connector.Abortable, op, err)
	}
	if err := w.syncDirs(); err != nil {
		return connector.NewCommitError(connector.Abortable, op, err)
	}
	if len(out.rows) == 0 && len(out.dlq) == 0 && w.rolled == 0 && b.to == nil && b.edit == nil && len(m.Pending) == 0 {
		return nil // nothing to commit (a close with nothing staged)
	}
	for tp, n := range b.to {
		next.partOrNew(tp).Next = n
	}
	if err := s.reach("rolled"); err != nil {
		return err
	}
	// 5. The commit point.
	if renamed, err := writeManifest(s.root(), manifestPath(key), next, s.cfg.fsync(), s.reach); err != nil {
		kind := connector.Abortable
		if renamed {
			kind = connector.CommitUnknown
		}
		return connector.NewCommitError(kind, op, err)
	}
	if err := s.reach("committed"); err != nil {
		return err
	}
	// 6. Publish. The manifest is durable: a failure here is the next
	// lock holder's to finish, not this batch's.
	if err := s.publish(next.Pending); err != nil {
		if st := (*stopped)(nil); errors.As(err, &st) {
			return err
		}
		s.log.Warn("files committed, renaming them to their final names failed; the next commit or claim retries", "err", err)
		return nil
	}
	for _, f := range w.obsolete {
		if err := os.Remove(filepath.Join(s.root(), f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("removing a rolled staging file failed; the next claim retries", "file", f, "err", err)
		}
	}
	return nil
}

// classifyRead classifies a failure to read a manifest: corrupt or of an
// unknown version is Fatal (retrying reads the same bytes), anything else
// Abortable.
func classifyRead(op string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return connector.NewCommitError(connector.Abortable, op, err)
	}
	return connector.NewCommitError(connector.Fatal, op, err)
}

// rollForward does m's pending renames (a commit that crashed or failed
// after its commit point). Nothing of the new batch is written yet, so a
// failure is Abortable; a file that is at neither name is lost, Fatal.
func (s *Store) rollForward(m *manifest) error {
	if len(m.Pending) == 0 {
		return nil
	}
	if err := s.publish(m.Pending); err != nil {
		kind := connector.Abortable
		if errors.Is(err, errLost) {
			kind = connector.Fatal
		}
		return connector.NewCommitError(kind, "roll forward", err)
	}
	return nil
}

// errLost marks a committed file found at neither its temporary nor its
// final name.
var errLost = errors.New("committed file lost")

// publish renames each pending file to its final name, creating its
// directory; a rename already done (the source gone, the target there) is
// skipped, so publishing twice is harmless. Directories are fsynced once
// at the end.
func (s *Store) publish(pending []rename) error {
	sync := s.cfg.fsync()
	dirs := map[string]bool{}
	for i, r := range pending {
		from, to := filepath.Join(s.root(), r.From), filepath.Join(s.root(), r.To)
		if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(to); err != nil {
				return fmt.Errorf("%w: %s is at neither %s nor %s", errLost, r.To, r.From, r.To)
			}
			continue
		}
		if err := mkdirAll(s.root(), filepath.Dir(r.To), sync); err != nil {
			return err
		}
		if err := os.Rename(from, to); err != nil {
			return err
		}
		dirs[filepath.Dir(to)], dirs[filepath.Dir(from)] = true, true
		if i == 0 {
			if err := s.reach("published-one"); err != nil {
				return err
			}
		}
	}
	if sync {
		for d := range dirs {
			if err := syncDir(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// commitWork is one commit's writes before its commit point.
type commitWork struct {
	s   *Store
	key string
	m   *manifest // the next manifest, being built
	// dirs to fsync before the commit point (new staging files, new
	// temporary files).
	dirs map[string]bool
	// obsolete are staging files of rolled Parquet segments, deleted after
	// the commit point.
	obsolete []string
	n        int // files created, for unique names
	rolled   int // segments rolled
}

func (w *commitWork) dirty(rel string) {
	if w.dirs == nil {
		w.dirs = map[string]bool{}
	}
	w.dirs[filepath.Join(w.s.root(), filepath.Dir(rel))] = true
}

func (w *commitWork) syncDirs() error {
	if !w.s.cfg.fsync() {
		return nil
	}
	for d := range w.dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// newName is a file name no earlier commit used: the manifest's seq and a
// counter (an aborted commit's names are reused by its retry, whose files
// replace them).
func (w *commitWork) newName(prefix, ext string) string {
	w.n++
	return prefix + "+" + strconv.FormatInt(w.m.Seq, 10) + "-" + strconv.Itoa(w.n) + "." + ext
}

// stage appends rows to their segments' staging files, each cut first to
// its committed length, and fsyncs them.
func (w *commitWork) stage(rows map[connector.TopicPartition][]stagedRow) error {
	root, sync := w.s.root(), w.s.cfg.fsync()
	now := w.s.now().UnixMilli()
	for _, tp := range sortedKeys(rows) {
		p := w.m.partOrNew(tp)
		// Rows by directory, in batch order.
		var dirs []string
		byDir := map[string][]stagedRow{}
		for _, r := range rows[tp] {
			if _, ok := byDir[r.dir]; !ok {
				dirs = append(dirs, r.dir)
			}
			byDir[r.dir] = append(byDir[r.dir], r)
		}
		for _, dir := range dirs {
			i := slices.IndexFunc(p.Staged, func(g segment) bool { return g.Dir == dir })
			if i < 0 {
				file := stagingDir + "/" + w.key + "/" + w.newName(escapeName(tp.Topic)+"+"+strconv.Itoa(int(tp.Partition)), "jsonl")
				if err := os.MkdirAll(filepath.Join(root, filepath.Dir(file)), 0o755); err != nil {
					return err
				}
				w.dirty(file)
				p.Staged = append(p.Staged, segment{Dir: dir, File: file, First: byDir[dir][0].offset, Last: byDir[dir][0].offset, Since: now})
				i = len(p.Staged) - 1
			}
			g := &p.Staged[i]
			f, err := os.OpenFile(filepath.Join(root, g.File), os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			n, err := appendAt(f, g.Bytes, byDir[dir], sync)
			if err != nil {
				return err
			}
			g.Bytes += n
			for _, r := range byDir[dir] {
				g.Rows++
				g.First, g.Last = min(g.First, r.offset), max(g.Last, r.offset)
			}
		}
	}
	return nil
}

// appendAt cuts f to size (the committed length: anything beyond is from
// a commit that did not happen), writes the rows after it, fsyncs when
// sync, and closes f.
func appendAt(f *os.File, size int64, rows []stagedRow, sync bool) (int64, error) {
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	var buf []byte
	for _, r := range rows {
		buf = append(buf, r.line...)
	}
	if _, err := f.WriteAt(buf, size); err != nil {
		return 0, err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	return int64(len(buf)), f.Close()
}

// roll turns every segment that is due (or that rollAll accepts) into a
// file to publish, and drops it from the staged list.
func (w *commitWork) roll(rollAll func(*partState) bool) error {
	now := w.s.now()
	for _, p := range w.m.Partitions {
		all := rollAll != nil && rollAll(p)
		kept := p.Staged[:0:0]
		for _, g := range p.Staged {
			due := all || g.Bytes >= int64(w.s.cfg.Roll.MaxBytes) ||
				now.Sub(time.UnixMilli(g.Since)) >= w.s.cfg.Roll.MaxInterval
			if !due {
				kept = append(kept, g)
				continue
			}
			if err := w.rollSegment(p, g); err != nil {
				return err
			}
		}
		p.Staged = kept
	}
	return nil
}

// rollSegment writes g's committed rows as a file in tmp/ (or, for JSON
// Lines, takes its staging file as is) and adds it and its rename to the
// manifest.
func (w *commitWork) rollSegment(p *partState, g segment) error {
	root := w.s.root()
	ext := w.s.cfg.Format
	final := w.finalPath(g.Dir, p.tp(), g.First, g.Last, ext)
	from := g.File
	if w.s.cfg.Format == FormatParquet {
		from = tmpDir + "/" + w.newName(w.key, ext)
		if err := os.MkdirAll(filepath.Join(root, tmpDir), 0o755); err != nil {
			return err
		}
		src, err := os.Open(filepath.Join(root, g.File))
		if err != nil {
			return err
		}
		n, err := w.s.cfg.writeParquet(filepath.Join(root, from), io.LimitReader(src, g.Bytes), w.s.cfg.fsync())
		src.Close()
		if err != nil {
			return fmt.Errorf("rolling %s: %w", g.File, err)
		}
		if n != g.Rows {
			return fmt.Errorf("rolling %s: %d staged rows, the manifest committed %d", g.File, n, g.Rows)
		}
		w.dirty(from)
		w.obsolete = append(w.obsolete, g.File)
	} else if err := truncateTo(filepath.Join(root, g.File), g.Bytes, w.s.cfg.fsync()); err != nil {
		return err
	}
	w.m.addFile(fileEntry{Path: final, Rows: g.Rows, Topic: p.Topic, Partition: p.Partition, First: g.First, Last: g.Last})
	w.rolled++
	w.m.Pending = append(w.m.Pending, rename{From: from, To: final})
	return nil
}

// finalPath is where a file of tp's rows first..last goes under dir ("" for
// the root).
//
// Exactly once, a range is written once per checkpoint: the claim fences
// every other writer and the checkpoint only moves forward, so the same
// range again (after an offsets reset) holds the same rows, and its file
// replaces the old one (manifest.addFile).
//
// At least once, nothing fences: after a rewind, or while two members both
// write a partition during a rebalance, a segment can span the same first
// and last offsets as a listed file but hold other rows (its rows from two
// writers, with a gap). Replacing the listed file would lose the rows only
// it held, so the at_least_once writer gives such a file the next free
// copy number instead, and both stay: a duplicate, never a loss.
func (w *commitWork) finalPath(dir string, tp connector.TopicPartition, first, last int64, ext string) string {
	for n := 0; ; n++ {
		path := fileName(w.s.opts.Connector, tp, first, last, n, ext)
		if dir != "" {
			path = dir + "/" + path
		}
		if w.key != atLeastOnceKey || !w.m.lists(path) {
			return path
		}
	}
}

// truncateTo cuts a staging file that becomes a JSON Lines file as is to
// its committed length.
func truncateTo(path string, size int64, sync bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() == size {
		return nil
	}
	if err := os.Truncate(path, size); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// deadLetters writes each partition's dead letters of the batch as one
// JSON Lines file in tmp/, to be published in _dead_letters/.
func (w *commitWork) deadLetters(dlq map[connector.TopicPartition][]deadLetter) error {
	root := w.s.root()
	for _, tp := range sortedKeys(dlq) {
		ds := dlq[tp]
		first, last := ds[0].offset, ds[0].offset
		var buf []byte
		for _, d := range ds {
			first, last = min(first, d.offset), max(last, d.offset)
			buf = append(buf, d.line...)
		}
		tmp := tmpDir + "/" + w.newName(w.key, "jsonl")
		if err := os.MkdirAll(filepath.Join(root, tmpDir), 0o755); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(root, tmp), buf, w.s.cfg.fsync()); err != nil {
			return err
		}
		w.dirty(tmp)
		final := w.finalPath(deadLetterDir, tp, first, last, "jsonl")
		w.m.addFile(fileEntry{Path: final, Rows: int64(len(ds)), Topic: tp.Topic, Partition: tp.Partition,
			First: first, Last: last, DeadLetters: true})
		w.m.Pending = append(w.m.Pending, rename{From: tmp, To: final})
	}
	return nil
}

func sortedKeys[V any](m map[connector.TopicPartition]V) []connector.TopicPartition {
	tps := make([]connector.TopicPartition, 0, len(m))
	for tp := range m {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, connector.TopicPartition.Compare)
	return tps
}

// Close rolls the staged rows of the partitions this store still owns
// into files, so that everything committed is visible to outside readers
// once the connector stops, then makes later calls fail. Partitions
// claimed since by someone else are left to their owner. A failure is
// logged: the rows stay committed and staged, and roll with a later
// commit.
func (s *Store) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	held := s.held
	s.held = nil
	s.mu.Unlock()
	if s.err != nil {
		return
	}
	for group, epochs := range held {
		s.closeRoll(groupKey(group), func(p *partState) bool {
			e, ok := epochs[p.tp()]
			return ok && e == p.Epoch
		})
	}
}

// closeRoll rolls the staged segments of key's partitions that owned
// accepts, logging a failure.
func (s *Store) closeRoll(key string, owned func(*partState) bool) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LockTimeout)
	defer cancel()
	if err := s.apply(ctx, "close", key, batch{rollAll: owned}); err != nil {
		s.log.Warn("rolling staged rows at close failed; they stay committed, and roll with a later commit", "err", err)
	}
}
