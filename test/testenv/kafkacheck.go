package testenv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// CheckKafka proves that the brokers can do what connectd needs: it creates a
// topic with the given replication factor, produces one record in a
// transaction, commits it, reads it back with read_committed, and deletes the
// topic. It returns the first error; callers retry while a broker is starting.
func CheckKafka(ctx context.Context, brokers []string, replicationFactor int16) (err error) {
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer adm.Close()
	admin := kadm.NewClient(adm)

	topic := "connectd-ready-" + randomHex(6)
	resp, err := admin.CreateTopic(ctx, 1, replicationFactor, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = admin.DeleteTopic(dctx, topic)
	}()

	producer, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.TransactionalID("connectd-ready-"+randomHex(6)),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordRetries(20),
	)
	if err != nil {
		return err
	}
	defer producer.Close()
	if err := producer.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	want := "ready-" + randomHex(4)
	if err := producer.ProduceSync(ctx, kgo.StringRecord(want)).FirstErr(); err != nil {
		_ = producer.EndTransaction(ctx, kgo.TryAbort)
		return fmt.Errorf("transactional produce: %w", err)
	}
	if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}

	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return err
	}
	defer consumer.Close()
	for {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read committed record: %w", err)
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, e error) { ferr = errors.Join(ferr, e) })
		if ferr != nil {
			return fmt.Errorf("fetch: %w", ferr)
		}
		for _, r := range fetches.Records() {
			if string(r.Value) == want {
				return nil
			}
		}
	}
}

// WaitKafka retries CheckKafka until it passes or ctx ends, returning the last error.
func WaitKafka(ctx context.Context, brokers []string, replicationFactor int16) error {
	var last error
	for {
		attempt, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := CheckKafka(attempt, brokers, replicationFactor)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka at %v not ready: %w", brokers, last)
		case <-time.After(time.Second):
		}
	}
}
