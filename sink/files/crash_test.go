package files

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/connectd/connectd/connector"
)

var errCrash = errors.New("simulated crash")

// crashAt makes s stop at point, the first time it gets there, as a
// process killed there would: the step returns at once and nothing after
// it runs (the lock is released, as the kernel releases a dead process's
// flock).
func crashAt(s *Store, point string) {
	hit := false
	s.hook = func(p string) error {
		if p == point && !hit {
			hit = true
			return errCrash
		}
		return nil
	}
}

// TestCrashMidCommit stops a commit between each of its steps, then opens
// the directory again as a new process would and claims: the output is
// the state before the commit (crashed before the commit point) or after
// it (crashed after), exactly, with every row once; an outside reader of
// the tree never sees a row twice, before recovery or after; recovery
// leaves no temporary, stale staged bytes or unlisted file; and the
// connector then finishes the input with every event once.
func TestCrashMidCommit(t *testing.T) {
	points := []struct {
		name       string
		committed  bool                                  // the crash is after the commit point
		leftBehind func(t *testing.T, cfg Config) string // what the crash left, proving it bit ("" if nothing)
	}{
		{"staged", false, func(t *testing.T, cfg Config) string {
			m := manifestOf(t, cfg)
			for _, p := range m.Partitions {
				for _, g := range p.Staged {
					if st, _ := os.Stat(filepath.Join(cfg.Path, g.File)); st != nil && st.Size() > g.Bytes {
						return "staged bytes past the committed length"
					}
				}
			}
			return ""
		}},
		{"rolled", false, func(t *testing.T, cfg Config) string {
			if len(inDir(t, cfg, tmpDir)) > 0 {
				return "temporary files"
			}
			return ""
		}},
		{"before-manifest-rename", false, func(t *testing.T, cfg Config) string {
			if _, err := os.Stat(filepath.Join(cfg.Path, manifestPath("g")+".tmp")); err == nil {
				return "a manifest temporary"
			}
			return ""
		}},
		{"committed", true, func(t *testing.T, cfg Config) string {
			m := manifestOf(t, cfg)
			for _, r := range m.Pending {
				if _, err := os.Stat(filepath.Join(cfg.Path, r.To)); err != nil {
					return "committed files not renamed yet"
				}
			}
			return ""
		}},
		{"published-one", true, func(t *testing.T, cfg Config) string {
			m := manifestOf(t, cfg)
			done, todo := 0, 0
			for _, r := range m.Pending {
				if _, err := os.Stat(filepath.Join(cfg.Path, r.To)); err == nil {
					done++
				} else {
					todo++
				}
			}
			if done > 0 && todo > 0 {
				return "some committed files renamed, some not"
			}
			return ""
		}},
	}
	for _, format := range []string{FormatParquet, FormatJSONL} {
		for _, pt := range points {
			t.Run(format+"/"+pt.name, func(t *testing.T) {
				cfg := testConfig(t, format)
				cfg.Roll.MaxBytes = 6 << 10 // the crashing commit rolls both partitions
				s := openStore(cfg, "dlq")
				c := claim(t, s, tp0, tp1)
				a := append(recs(tp0, 0, 10), recs(tp1, 0, 10)...)
				mustCommit(t, s, c, a, connector.Checkpoint{}, connector.Checkpoint{tp0: 10, tp1: 10})

				// Offset 39 of in/1 is a dead letter, whenever it is read.
				dead := rec(tp1, 39)
				dead.Topic = "dlq"
				input := func(tp connector.TopicPartition, from, to int64) []*connector.Record {
					rs := recs(tp, from, to)
					for i, r := range rs {
						if r.EventID == dead.EventID {
							rs[i] = dead
						}
					}
					return rs
				}
				b := append(input(tp0, 10, 40), input(tp1, 10, 40)...)
				crashAt(s, pt.name)
				err := s.Commit(tctx(t), testGroup, epochsOf(c), b, connector.Checkpoint{tp0: 10, tp1: 10}, connector.Checkpoint{tp0: 40, tp1: 40})
				if !errors.Is(err, errCrash) {
					t.Fatalf("the commit did not stop at %s: %v", pt.name, err)
				}
				if what := pt.leftBehind(t, cfg); what == "" {
					t.Fatalf("the crash at %s left nothing behind: it did not bite", pt.name)
				} else {
					t.Logf("crash at %s left %s", pt.name, what)
				}
				noVisibleDuplicates(t, cfg)
				seen := visibleIDs(t, cfg) // what an outside reader saw right after the crash

				// A new process takes over.
				s2 := openStore(cfg, "dlq")
				c2 := claim(t, s2, tp0, tp1)
				out := read(t, cfg)
				wantIDs, wantCP, wantDLQ := idsOf(a), connector.Checkpoint{tp0: 10, tp1: 10}, []string(nil)
				if pt.committed {
					wantIDs, wantCP, wantDLQ = idsOf(append(a, append(recs(tp0, 10, 40), recs(tp1, 10, 39)...)...)), connector.Checkpoint{tp0: 40, tp1: 40}, []string{dead.EventID}
				}
				if got := ids(out.Files, out.Staged); !slices.Equal(got, wantIDs) {
					t.Errorf("after recovery: %d rows, want %d (the state %s the commit), each once", len(got), len(wantIDs), map[bool]string{false: "before", true: "after"}[pt.committed])
				}
				if got := ids(out.DeadLetters); !slices.Equal(got, wantDLQ) {
					t.Errorf("dead letters %v, want %v", got, wantDLQ)
				}
				if !maps.Equal(out.Checkpoint, wantCP) || c2[tp0].Next != wantCP[tp0] || c2[tp1].Next != wantCP[tp1] {
					t.Errorf("checkpoint %v, claims %+v, want %v", out.Checkpoint, c2, wantCP)
				}
				clean(t, cfg, out)
				noVisibleDuplicates(t, cfg)
				if extra := missingFrom(seen, ids(out.Files)); len(extra) > 0 {
					t.Errorf("right after the crash an outside reader saw %d rows that are not committed, such as %s", len(extra), extra[0])
				}

				// The connector resumes at the claimed checkpoint and reads
				// the rest of the input (and the lost batch again).
				from := out.Checkpoint
				rest := append(input(tp0, from[tp0], 50), input(tp1, from[tp1], 50)...)
				mustCommit(t, s2, c2, rest, from, connector.Checkpoint{tp0: 50, tp1: 50})
				s2.Close()
				out = read(t, cfg)
				all := idsOf(append(recs(tp0, 0, 50), recs(tp1, 0, 50)...))
				all = slices.DeleteFunc(all, func(id string) bool { return id == dead.EventID })
				if got := ids(out.Files); !slices.Equal(got, all) || len(out.Staged) != 0 {
					t.Errorf("at the end: %d rows in files (%d staged), want %d once each", len(got), len(out.Staged), len(all))
				}
				if got := ids(out.DeadLetters); !slices.Equal(got, []string{dead.EventID}) {
					t.Errorf("dead letters at the end: %v", got)
				}
				if got := visibleIDs(t, cfg); !slices.Equal(got, all) {
					t.Errorf("an outside reader finds %d rows, want %d once each", len(got), len(all))
				}
				clean(t, cfg, out)
			})
		}
	}
}

// TestCrashMidClaim: a claim stopped before its manifest rename raised no
// epoch; the next claim works and fences the first owner.
func TestCrashMidClaim(t *testing.T) {
	cfg := testConfig(t, FormatParquet)
	s := openStore(cfg, "")
	c := claim(t, s, tp0)
	heir := openStore(cfg, "")
	crashAt(heir, "before-manifest-rename")
	if _, err := heir.Claim(tctx(t), testGroup, []connector.TopicPartition{tp0}); !errors.Is(err, errCrash) {
		t.Fatalf("claim: %v", err)
	}
	if m := manifestOf(t, cfg); m.Partitions[0].Epoch != c[tp0].Epoch {
		t.Errorf("a crashed claim raised the epoch to %d", m.Partitions[0].Epoch)
	}
	mustCommit(t, s, c, recs(tp0, 0, 2), connector.Checkpoint{}, connector.Checkpoint{tp0: 2})
	hc := claim(t, openStore(cfg, ""), tp0)
	if hc[tp0].Epoch <= c[tp0].Epoch || hc[tp0].Next != 2 {
		t.Errorf("claim after the crash: %+v", hc[tp0])
	}
	err := s.Commit(tctx(t), testGroup, epochsOf(c), recs(tp0, 2, 3), connector.Checkpoint{tp0: 2}, connector.Checkpoint{tp0: 3})
	if connector.KindOf(err) != connector.Fenced {
		t.Errorf("the first owner's commit: %v, want Fenced", err)
	}
}

func manifestOf(t *testing.T, cfg Config) *manifest {
	t.Helper()
	m, err := readManifest(cfg.Path, manifestPath(groupKey(testGroup)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func inDir(t *testing.T, cfg Config, dir string) []string {
	var out []string
	for _, f := range tree(t, cfg.Path) {
		if strings.HasPrefix(f, dir+"/") {
			out = append(out, f)
		}
	}
	return out
}

// clean checks what recovery (or a finished commit) leaves: no
// temporaries, staging files only as the manifest names them and no
// longer than it says, every visible data file listed, none unlisted.
func clean(t *testing.T, cfg Config, out *Output) {
	t.Helper()
	if tmp := inDir(t, cfg, tmpDir); len(tmp) > 0 {
		t.Errorf("temporaries left: %v", tmp)
	}
	m := manifestOf(t, cfg)
	named := map[string]int64{}
	for _, p := range m.Partitions {
		for _, g := range p.Staged {
			named[g.File] = g.Bytes
		}
	}
	for _, f := range inDir(t, cfg, stagingDir) {
		size, ok := named[f]
		st, _ := os.Stat(filepath.Join(cfg.Path, f))
		if !ok || st.Size() != size {
			t.Errorf("staging file %s: named %v, %d bytes, committed %d", f, ok, st.Size(), size)
		}
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Path] = true
	}
	for _, f := range visible(t, cfg.Path) {
		if !listed[f] {
			t.Errorf("visible file %s is not in the manifest", f)
		}
	}
	if len(out.Unlisted) > 0 {
		t.Errorf("unlisted files: %v", out.Unlisted)
	}
}

// visibleIDs are the event IDs in the data files an outside reader finds,
// one per copy, sorted.
func visibleIDs(t *testing.T, cfg Config) []string {
	t.Helper()
	var out []string
	for _, f := range visible(t, cfg.Path) {
		rows, err := readRows(filepath.Join(cfg.Path, f), -1)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			out = append(out, r.EventID)
		}
	}
	slices.Sort(out)
	return out
}

func noVisibleDuplicates(t *testing.T, cfg Config) {
	t.Helper()
	ids := visibleIDs(t, cfg)
	if c := slices.Compact(slices.Clone(ids)); len(c) != len(ids) {
		t.Errorf("an outside reader sees %d rows of %d distinct events", len(ids), len(c))
	}
}

// missingFrom returns the IDs of a not in b (both sorted).
func missingFrom(a, b []string) []string {
	var out []string
	for _, id := range a {
		if _, ok := slices.BinarySearch(b, id); !ok {
			out = append(out, id)
		}
	}
	return out
}
