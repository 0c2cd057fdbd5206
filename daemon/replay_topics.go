package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/kappa"
)

// mirrorTopics creates a replay's Kafka topics (its output and dead-letter
// topics, the renames of fields named "topic") like the live connector's:
// the same partition count, replication factor and topic-level settings
// (retention.ms, cleanup.policy, ...), so the replayed results are spread
// and kept as the live ones are. Without it a replay's topic would be
// auto-created with the broker's defaults: a live topic kept for ever
// would be shadowed by one whose 7-day retention deletes replayed window
// results stamped with older event times. A topic that exists is left
// alone; a live topic that does not exist yet is not copied (the broker's
// defaults apply, as they will to it).
func (d *Daemon) mirrorTopics(ctx context.Context, renames []kappa.Rename) error {
	var pairs []kappa.Rename
	for _, r := range renames {
		if strings.HasSuffix(r.Field, ".topic") || r.Field == "dead_letter_queue.topic" {
			pairs = append(pairs, r)
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	adm, done, err := d.kafkaAdmin()
	if err != nil {
		return err
	}
	defer done()
	for _, p := range pairs {
		details, err := adm.ListTopics(ctx, p.From, p.To)
		if err != nil {
			return fmt.Errorf("replay: describing topics %s and %s: %w", p.From, p.To, err)
		}
		if td, ok := details[p.To]; ok && td.Err == nil {
			continue // exists: left alone
		}
		live, ok := details[p.From]
		if !ok || live.Err != nil {
			continue
		}
		rcs, err := adm.DescribeTopicConfigs(ctx, p.From)
		if err != nil {
			return fmt.Errorf("replay: the settings of topic %s: %w", p.From, err)
		}
		configs := map[string]*string{}
		if rc, err := rcs.On(p.From, nil); err == nil {
			for _, c := range rc.Configs {
				if c.Source == kmsg.ConfigSourceDynamicTopicConfig && !c.Sensitive {
					configs[c.Key] = c.Value
				}
			}
		}
		resp, err := adm.CreateTopic(ctx, int32(len(live.Partitions)), int16(live.Partitions.NumReplicas()), configs, p.To)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("replay: creating topic %s like %s: %w", p.To, p.From, err)
		}
		d.log.Info("replay topic created like the live one", "topic", p.To, "like", p.From,
			"partitions", len(live.Partitions), "configs", len(configs))
	}
	return nil
}
