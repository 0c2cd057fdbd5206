package bounded

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// Explicit stops are taken as written, beyond the end too; a partition
// left out, one that does not exist and a missing topic are errors naming
// them.
func TestExplicit(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	stops, err := Explicit(ctx, adm, []string{"in"}, map[string]map[int32]int64{"in": {0: 5, 1: 0, 2: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	want := connector.Checkpoint{{Topic: "in", Partition: 0}: 5, {Topic: "in", Partition: 1}: 0, {Topic: "in", Partition: 2}: 1000}
	if len(stops) != len(want) {
		t.Fatalf("stops = %v, want %v", stops, want)
	}
	for tp, o := range want {
		if stops[tp] != o {
			t.Errorf("stop of %s = %d, want %d", tp, stops[tp], o)
		}
	}
	for _, tc := range []struct {
		offsets map[string]map[int32]int64
		topics  []string
		want    string
	}{
		{map[string]map[int32]int64{"in": {0: 5}}, []string{"in"}, "in has 3 partitions, not listed: [1 2]"},
		{map[string]map[int32]int64{"in": {0: 5, 1: 5, 2: 5, 7: 5}}, []string{"in"}, "in has no partition 7"},
		{map[string]map[int32]int64{"gone": {0: 5}}, []string{"gone"}, `input topic "gone" does not exist`},
	} {
		_, err := Explicit(ctx, adm, tc.topics, tc.offsets)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.offsets, err, tc.want)
		}
	}
}
