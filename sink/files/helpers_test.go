package files

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

func envOf(dlq string) component.SinkEnv { return component.SinkEnv{Connector: "conn", DLQTopic: dlq} }

var (
	tp0 = connector.TopicPartition{Topic: "in", Partition: 0}
	tp1 = connector.TopicPartition{Topic: "in", Partition: 1}
)

const testGroup = "g"

// base is the event time of offset 0; offset n is n minutes later, so
// 60 offsets span an hour directory.
var base = time.Date(2026, 12, 4, 13, 0, 0, 0, time.UTC)

// rec is input event n of tp: a JSON value with every column type.
func rec(tp connector.TopicPartition, n int64) *connector.Record {
	ts := base.Add(time.Duration(n) * time.Minute)
	return &connector.Record{
		Key:       []byte(fmt.Sprintf("k%d", n)),
		Value:     []byte(fmt.Sprintf(`{"n":%d,"amount":%d.25,"ok":%v,"name":"e%d","at":"%s","country":"c%d"}`, n, n, n%2 == 0, n, ts.Format(time.RFC3339Nano), n%3)),
		EventID:   fmt.Sprintf("%s-%d-%d", tp.Topic, tp.Partition, n),
		Origin:    connector.Origin{Topic: tp.Topic, Partition: tp.Partition, Offset: n},
		Timestamp: ts,
	}
}

func recs(tp connector.TopicPartition, from, to int64) []*connector.Record {
	var out []*connector.Record
	for n := from; n < to; n++ {
		out = append(out, rec(tp, n))
	}
	return out
}

// testConfig is a validated config writing under a fresh directory with
// one column of each type.
func testConfig(t *testing.T, format string) Config {
	t.Helper()
	cfg := Config{Path: t.TempDir(), Format: format, Columns: map[string]string{
		"n": "json:n::int64", "amount": "json:amount::double", "ok": "json:ok::bool",
		"name": "json:name", "at": "json:at::timestamp", "key": "key",
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func openStore(cfg Config, dlq string) *Store {
	return NewStore(cfg, Options{Connector: "conn", DLQTopic: dlq})
}

func claim(t *testing.T, s *Store, tps ...connector.TopicPartition) connector.Claims {
	t.Helper()
	c, err := s.Claim(tctx(t), testGroup, tps)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return c
}

func epochsOf(c connector.Claims) map[connector.TopicPartition]int64 {
	e := map[connector.TopicPartition]int64{}
	for tp, pc := range c {
		e[tp] = pc.Epoch
	}
	return e
}

func mustCommit(t *testing.T, s *Store, c connector.Claims, rs []*connector.Record, from, to connector.Checkpoint) {
	t.Helper()
	if err := s.Commit(tctx(t), testGroup, epochsOf(c), rs, from, to); err != nil {
		t.Fatalf("commit %v → %v: %v", from, to, err)
	}
}

// read returns the group's committed output.
func read(t *testing.T, cfg Config) *Output {
	t.Helper()
	out, err := ReadOutput(tctx(t), cfg, "conn", testGroup)
	if err != nil {
		t.Fatalf("read output: %v", err)
	}
	return out
}

// ids are the event IDs of files, sorted, one per copy.
func ids(files ...[]File) []string {
	var out []string
	for _, fs := range files {
		for _, f := range fs {
			for _, r := range f.Rows {
				out = append(out, r.EventID)
			}
		}
	}
	slices.Sort(out)
	return out
}

func idsOf(rs []*connector.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.EventID)
	}
	slices.Sort(out)
	return out
}

// tree lists the files under root (relative, slash-separated), sorted.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// visible are the data files an outside reader's glob finds: under the
// partition directories, not under a directory starting with "_".
func visible(t *testing.T, root string) []string {
	var out []string
	for _, f := range tree(t, root) {
		if !strings.HasPrefix(f, "_") {
			out = append(out, f)
		}
	}
	return out
}
