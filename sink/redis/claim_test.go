package redis

import (
	"context"
	"maps"
	"testing"

	"github.com/connectd/connectd/connector"
)

// TestClaimMalformedFieldChangesNothing: a claim over partitions on both
// sides of a malformed offsets field fails as a whole and leaves every
// field as it was (the claim script checks all of them before it writes
// any), in either order of the partitions.
func TestClaimMalformedFieldChangesNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, sharedConfig(t), "")
	tps := []connector.TopicPartition{{Topic: "in", Partition: 0}, {Topic: "in", Partition: 1}, {Topic: "in", Partition: 2}}
	if _, err := s.Claim(ctx, "g", tps); err != nil {
		t.Fatal(err)
	}
	key := s.OffsetsKey("g")
	for _, bad := range []string{"garbage", "x1:5", "1:", ":5", "1.5:5"} {
		if err := s.client.HSet(ctx, key, "in/1", bad).Err(); err != nil {
			t.Fatal(err)
		}
		before, err := s.client.HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, order := range [][]connector.TopicPartition{tps, {tps[2], tps[1], tps[0]}} {
			_, err := s.Claim(ctx, "g", order)
			mustKind(t, err, connector.Fatal)
			after, err := s.client.HGetAll(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(before, after) {
				t.Fatalf("field %q, claim %v failed but changed the offsets hash: %v → %v", bad, order, before, after)
			}
		}
	}
}
