package verify

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	tests := []struct {
		name             string
		expected, actual []string
		want             Report
	}{
		{
			name:     "clean",
			expected: []string{"a", "b", "c"},
			actual:   []string{"c", "a", "b"},
			want:     Report{Expected: 3, Actual: 3},
		},
		{
			name: "empty",
			want: Report{},
		},
		{
			name:     "injected duplicate caught",
			expected: []string{"a", "b", "c"},
			actual:   []string{"a", "b", "b", "c"},
			want:     Report{Expected: 3, Actual: 4, Duplicates: 1, DuplicateIDs: []string{"b"}},
		},
		{
			name:     "triple counts two duplicates",
			expected: []string{"a"},
			actual:   []string{"a", "a", "a"},
			want:     Report{Expected: 1, Actual: 3, Duplicates: 2, DuplicateIDs: []string{"a"}},
		},
		{
			name:     "loss caught",
			expected: []string{"a", "b", "c"},
			actual:   []string{"a", "c"},
			want:     Report{Expected: 3, Actual: 2, Missing: 1, MissingIDs: []string{"b"}},
		},
		{
			// What reading an aborted transaction's output looks like.
			name:     "unexpected caught",
			expected: []string{"a", "b"},
			actual:   []string{"a", "x", "b", "x"},
			want:     Report{Expected: 2, Actual: 4, Unexpected: 2, UnexpectedIDs: []string{"x"}},
		},
		{
			// A loss hidden by a duplicate still shows as both.
			name:     "duplicate masks loss in totals only",
			expected: []string{"a", "b"},
			actual:   []string{"a", "a"},
			want:     Report{Expected: 2, Actual: 2, Duplicates: 1, Missing: 1, DuplicateIDs: []string{"a"}, MissingIDs: []string{"b"}},
		},
		{
			name:     "multiset surplus and deficit",
			expected: []string{"a", "a", "b", "b", "b", "c"},
			actual:   []string{"a", "a", "a", "b", "c"},
			want:     Report{Expected: 6, Actual: 5, Duplicates: 1, Missing: 2, DuplicateIDs: []string{"a"}, MissingIDs: []string{"b"}},
		},
		{
			name:     "multiset exact",
			expected: []string{"a", "a", "b"},
			actual:   []string{"a", "b", "a"},
			want:     Report{Expected: 3, Actual: 3},
		},
		{
			name:     "topic-qualified IDs are distinct",
			expected: []string{"out\x00e-1", "dlq\x00e-2"},
			actual:   []string{"out\x00e-1", "out\x00e-2"},
			want: Report{Expected: 2, Actual: 2, Missing: 1, Unexpected: 1,
				MissingIDs: []string{"dlq\x00e-2"}, UnexpectedIDs: []string{"out\x00e-2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compare(tt.expected, tt.actual)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Compare() = %+v, want %+v", got, tt.want)
			}
			if clean := tt.want.Duplicates+tt.want.Missing+tt.want.Unexpected == 0; got.Clean() != clean {
				t.Fatalf("Clean() = %v, want %v", got.Clean(), clean)
			}
		})
	}
}

func TestCompareSamplesBounded(t *testing.T) {
	var expected, actual []string
	for i := range 50 {
		id := fmt.Sprint("e-", i)
		expected = append(expected, id)
		actual = append(actual, id, id, fmt.Sprint("x-", i))
	}
	expected = append(expected, strings.Split("m0 m1 m2 m3 m4 m5 m6 m7 m8 m9 m10 m11", " ")...)
	r := Compare(expected, actual)
	if r.Duplicates != 50 || r.Unexpected != 50 || r.Missing != 12 {
		t.Fatalf("counts %+v", r)
	}
	for _, ids := range [][]string{r.DuplicateIDs, r.MissingIDs, r.UnexpectedIDs} {
		if len(ids) != maxSamples {
			t.Errorf("sample of %d IDs, want %d", len(ids), maxSamples)
		}
	}
	if r.DuplicateIDs[0] != "e-0" || r.MissingIDs[0] != "m0" || r.UnexpectedIDs[9] != "x-9" {
		t.Errorf("samples not in first-seen order: %v %v %v", r.DuplicateIDs, r.MissingIDs, r.UnexpectedIDs)
	}
}

func TestReportJSON(t *testing.T) {
	b, err := json.Marshal(Compare([]string{"a", "b"}, []string{"a", "b"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"expected":2,"actual":2,"duplicates":0,"missing":0,"unexpected":0}`; string(b) != want {
		t.Fatalf("JSON = %s, want %s", b, want)
	}
	b, err = json.Marshal(Compare([]string{"a", "b"}, []string{"a", "a", "c"}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"expected":2,"actual":3,"duplicates":1,"missing":1,"unexpected":1,` +
		`"duplicate_ids":["a"],"missing_ids":["b"],"unexpected_ids":["c"]}`
	if string(b) != want {
		t.Fatalf("JSON = %s, want %s", b, want)
	}
}

func TestReportString(t *testing.T) {
	got := Compare([]string{"a", "b"}, []string{"a", "a"}).String()
	want := "expected 2, actual 2: 1 duplicates, 1 missing, 0 unexpected; duplicate e.g. a; missing e.g. b"
	if got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func BenchmarkCompare(b *testing.B) {
	ids := make([]string, 100000)
	for i := range ids {
		ids[i] = fmt.Sprint("orders-", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !Compare(ids, ids).Clean() {
			b.Fatal("not clean")
		}
	}
}

// The blind-spot counts: output beyond the checkpoint is unexpected (and
// actual) output, an input partition without a checkpoint alone makes a
// stopped pipeline's report unclean (a running one's it leaves clean: lag),
// and both reach the JSON line and the summary only when there are any, so
// a clean report keeps its five-field shape.
func TestBlindSpotCounts(t *testing.T) {
	rep := Compare([]string{"out:a", "out:b"}, []string{"out:a", "out:b"})
	rep.addBeyond(nil)
	if b, _ := json.Marshal(rep); string(b) != `{"expected":2,"actual":2,"duplicates":0,"missing":0,"unexpected":0}` || !rep.Clean() {
		t.Fatalf("clean report: %s", b)
	}
	rep.addBeyond([]string{"out:a", "out:z"})
	if rep.Actual != 4 || rep.Unexpected != 2 || rep.BeyondCheckpoint != 2 || rep.Clean() {
		t.Fatalf("after two outputs beyond the checkpoint: %+v", rep)
	}
	unchecked := Report{Expected: 2, Actual: 2, UncheckedPartitions: 1, UncheckedPartitionIDs: []string{"in/3: offsets 0 to 6"}}
	if !unchecked.Clean() {
		t.Fatal("a running pipeline's report with an unchecked partition is not clean")
	}
	stopped := unchecked
	stopped.Stopped = true
	if stopped.Clean() {
		t.Fatal("a stopped pipeline's report with an unchecked partition is clean")
	}
	total := rep.add(unchecked)
	b, _ := json.Marshal(total)
	want := `{"expected":4,"actual":6,"duplicates":0,"missing":0,"unexpected":2,"unexpected_ids":["out:a","out:z"],` +
		`"unchecked_partitions":1,"unchecked_partition_ids":["in/3: offsets 0 to 6"],"beyond_checkpoint":2}`
	if string(b) != want {
		t.Fatalf("JSON = %s\nwant   %s", b, want)
	}
	if s, want := total.String(), "expected 4, actual 6: 0 duplicates, 0 missing, 2 unexpected (2 beyond the checkpoint), "+
		"1 input partitions with records and no checkpoint (in/3: offsets 0 to 6); unexpected e.g. out:a, out:z"; s != want {
		t.Fatalf("String() = %q\nwant       %q", s, want)
	}
}
