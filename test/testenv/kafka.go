package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka returns the seed brokers of the Kafka that `make services` starts
// (KAFKA_BROKERS, default 127.0.0.1:9192), after checking that it answers.
// Tests share the broker; isolate them with KafkaTopics.
func Kafka(t testing.TB) []string {
	t.Helper()
	return kafkaAt(t, "Kafka", EnvKafkaBrokers, DefaultKafkaBrokers, "services")
}

func kafkaAt(t testing.TB, what, env, def, target string) []string {
	t.Helper()
	needService(t, what)
	brokers := splitList(envOr(env, def))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("%s=%q: %v", env, strings.Join(brokers, ","), err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).BrokerMetadata(ctx); err != nil {
		missing(t, what, strings.Join(brokers, ","), target, err)
	}
	return brokers
}

// KafkaTopics creates n fresh topics with uniquely generated names (derived
// from the test's name) and the given partition count, with the cluster's
// default replication factor, and deletes them when the test ends.
func KafkaTopics(t testing.TB, brokers []string, n int, partitions int32) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	admin := kadm.NewClient(cl)
	topics := make([]string, n)
	for i := range topics {
		topics[i] = UniqueName(t, "t", "-", 200)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resps, err := admin.CreateTopics(ctx, partitions, -1, nil, topics...)
	if err == nil {
		err = resps.Error()
	}
	t.Cleanup(func() {
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.DeleteTopics(ctx, topics...); err != nil {
			t.Logf("delete topics %v: %v", topics, err)
		}
	})
	if err == nil {
		err = AwaitTopics(ctx, cl, topics, partitions)
	}
	if err != nil {
		t.Fatalf("create topics %v on %v: %v", topics, brokers, err)
	}
	return topics
}

// AwaitTopics waits until every broker's metadata lists each of topics with
// all its partitions led; tests that create topics on several brokers call
// it after CreateTopics. CreateTopics returns once the controller has the
// topics, before every broker has applied them; a client that asks a lagging
// broker then gets UNKNOWN_TOPIC_OR_PARTITION and, after franz-go's few
// unknown-topic retries, fails its produce (CI run 66's TestReadCommittedLog).
func AwaitTopics(ctx context.Context, cl *kgo.Client, topics []string, partitions int32) error {
	for {
		lag, err := topicsLag(ctx, cl, topics, partitions)
		if err == nil && lag == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("%s", lag)
			}
			return fmt.Errorf("topics not ready on every broker: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// topicsLag asks every broker for the metadata of topics and says which one
// does not list them all with partitions led partitions ("" when all do).
func topicsLag(ctx context.Context, cl *kgo.Client, topics []string, partitions int32) (string, error) {
	brokers, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return "", err
	}
	req := kmsg.NewPtrMetadataRequest()
	for _, topic := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
	}
	for _, b := range brokers.Brokers {
		resp, err := req.RequestWith(ctx, cl.Broker(int(b.NodeID)))
		if err != nil {
			return "", err
		}
		for _, rt := range resp.Topics {
			led := int32(0)
			for _, p := range rt.Partitions {
				if p.ErrorCode == 0 && p.Leader >= 0 {
					led++
				}
			}
			if rt.ErrorCode != 0 || led < partitions {
				name := ""
				if rt.Topic != nil {
					name = *rt.Topic
				}
				return fmt.Sprintf("broker %d lists %d of %d partitions of %s led (error code %d)",
					b.NodeID, led, partitions, name, rt.ErrorCode), nil
			}
		}
		if len(resp.Topics) < len(topics) {
			return fmt.Sprintf("broker %d lists %d of %d topics", b.NodeID, len(resp.Topics), len(topics)), nil
		}
	}
	return "", nil
}

// KafkaTopic is KafkaTopics for a single topic.
func KafkaTopic(t testing.TB, brokers []string, partitions int32) string {
	t.Helper()
	return KafkaTopics(t, brokers, 1, partitions)[0]
}

// KafkaClient returns a franz-go client for brokers with opts, closed when the
// test ends.
func KafkaClient(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// UniqueTransactionalID returns a transactional ID no other test uses.
func UniqueTransactionalID(t testing.TB) string {
	return fmt.Sprintf("connectd-test-%s", UniqueName(t, "tx", "-", 120))
}
