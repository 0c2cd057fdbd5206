package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// EnsureStateTopic creates topic, a state topic, if it does not exist:
// compacted (cleanup.policy=compact), with the given partition count (-1:
// the broker's default) and the broker's default replication. It returns
// the partition count the topic has, which may differ from partitions when
// the topic already existed. It is idempotent and safe to race: a topic
// another process created first is accepted as if created here.
//
// An existing topic that is not compacted, or also deletes by retention
// (compact,delete), is refused with an error naming it: retention would
// delete state that is still open, and restoring it would silently lose it.
func EnsureStateTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32) (int32, error) {
	compact := "compact"
	resp, err := adm.CreateTopic(ctx, partitions, -1, map[string]*string{"cleanup.policy": &compact}, topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil && resp.NumPartitions > 0:
		return resp.NumPartitions, nil
	case err == nil:
		// An old broker that does not say what it created: ask.
	case !errors.Is(err, kerr.TopicAlreadyExists):
		return 0, fmt.Errorf("state topic %s: create: %w", topic, err)
	default:
		if err := checkCompacted(ctx, adm, topic); err != nil {
			return 0, err
		}
	}
	return partitionCount(ctx, adm, topic)
}

// configSettle bounds how long checkCompacted asks again for a topic whose
// configs are not visible yet.
const configSettle = 5 * time.Second

// checkCompacted fails unless topic's cleanup.policy is exactly compact. A
// topic another task created a moment ago can be described before its
// configs reached the answering broker (KRaft propagates them
// asynchronously): an answer without configs is asked again, for up to
// configSettle, rather than taken for Kafka's default, delete.
func checkCompacted(ctx context.Context, adm *kadm.Client, topic string) error {
	var rc kadm.ResourceConfig
	for deadline := time.Now().Add(configSettle); ; {
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			return fmt.Errorf("state topic %s: describe configs: %w", topic, err)
		}
		rc, err = rcs.On(topic, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return fmt.Errorf("state topic %s: describe configs: %w", topic, err)
		}
		if len(rc.Configs) > 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	policy := "delete" // Kafka's default when the config is absent
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" {
			policy = c.MaybeValue()
		}
	}
	if parts := strings.Split(policy, ","); !slices.Equal(parts, []string{"compact"}) {
		return fmt.Errorf("state topic %s exists with cleanup.policy=%s, want compact: retention would delete window state that is still needed; delete the topic or set cleanup.policy=compact", topic, policy)
	}
	return nil
}

// partitionCount returns topic's partition count. Right after another
// process created the topic, this broker's metadata may not list it yet:
// that is retried until ctx ends.
func partitionCount(ctx context.Context, adm *kadm.Client, topic string) (int32, error) {
	for {
		tds, err := adm.ListTopics(ctx, topic)
		if err == nil {
			err = tds.Error()
		}
		if err == nil {
			if td, ok := tds[topic]; ok && len(td.Partitions) > 0 {
				return int32(len(td.Partitions)), nil
			}
			err = kerr.UnknownTopicOrPartition
		}
		if !errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, kerr.LeaderNotAvailable) {
			return 0, fmt.Errorf("state topic %s: metadata: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("state topic %s: metadata: %w (%w)", topic, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
