package kfake_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/test/e2e"
)

// produceInput writes n records with unique event IDs ("in-<i>") to topic.
func produceInput(t *testing.T, c *kfake.Cluster, topic string, n int) {
	t.Helper()
	e2e.Produce(t, c, topic, 0, n)
}

// produceInputRange writes records from..to-1 like produceInput.
func produceInputRange(t *testing.T, c *kfake.Cluster, topic string, from, to int) {
	t.Helper()
	e2e.Produce(t, c, topic, from, to)
}

// consumeUntil reads with read_committed through a client made of opts (plus
// the cluster's brokers) and calls fn for every record until fn returns true.
func consumeUntil(t *testing.T, c *kfake.Cluster, opts []kgo.Opt, fn func(*kgo.Record) bool) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for done := false; !done; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("timed out reading: the records looked for never came")
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !done {
				done = fn(r)
			}
		})
	}
	return cl
}

// headers returns r's headers as a map.
func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}
