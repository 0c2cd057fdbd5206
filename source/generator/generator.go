// Package generator is a deterministic event source for the quickstart and
// benchmarks. Event i is a pure function of the generator's name, config and
// i, so a rewind after an abort replays identical records and the
// exactly-once checker can recompute the input instead of reading it back.
package generator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/connectd/connectd/connector"
)

// Config configures a generator.
type Config struct {
	// Count is the number of events to emit; 0 means unbounded. Default 0.
	Count int64 `yaml:"count"`
	// Rate is the events per second; 0 means as fast as the connector
	// reads. Default 0.
	Rate float64 `yaml:"rate"`
	// PayloadBytes is the approximate size of each value in bytes; values
	// are never smaller than their fixed fields. Default 100.
	PayloadBytes int `yaml:"payload_bytes"`
	// KeyCardinality is the number of distinct keys. Default 1000.
	KeyCardinality int `yaml:"key_cardinality"`
	// Seed varies keys and amounts deterministically; event IDs do not
	// depend on it.
	Seed int64 `yaml:"seed"`
}

const (
	defaultPayloadBytes   = 100
	defaultKeyCardinality = 1000
)

func (c Config) withDefaults() Config {
	if c.PayloadBytes == 0 {
		c.PayloadBytes = defaultPayloadBytes
	}
	if c.KeyCardinality == 0 {
		c.KeyCardinality = defaultKeyCardinality
	}
	return c
}

// validate checks the fields; each error starts with its field's name
// ("count: ..."), so a config error can be positioned at it.
func (c Config) validate() error {
	var errs []error
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("count: %d is negative", c.Count))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate: %v is not a non-negative number", c.Rate))
	}
	if c.PayloadBytes < 0 {
		errs = append(errs, fmt.Errorf("payload_bytes: %d is negative", c.PayloadBytes))
	}
	if c.KeyCardinality < 0 {
		errs = append(errs, fmt.Errorf("key_cardinality: %d is negative", c.KeyCardinality))
	}
	return errors.Join(errs...)
}

// ErrClosed is returned by Poll after Close.
var ErrClosed = errors.New("generator: closed")

// Generator emits Event(name, cfg, i) for i = 0, 1, ... as a single
// partition. Like every connector.Source it is driven by one goroutine (the
// coordinator) and is not safe for concurrent use.
type Generator struct {
	name   string
	topic  string // origin(name), kept to avoid building it per record
	cfg    Config
	next   int64 // seq of the next event Poll returns
	closed bool

	// Pacing models a log appended at cfg.Rate: event anchorSeq+k becomes
	// available at anchorAt + k/Rate. Events below that horizon are
	// "already produced", so a rewind replays them at once, as Kafka would.
	paced     bool
	anchorAt  time.Time
	anchorSeq int64
}

var _ connector.Source = (*Generator)(nil)

// New returns a generator called name. Zero fields of cfg take their
// defaults; negative ones are an error.
func New(name string, cfg Config) (*Generator, error) {
	if name == "" {
		return nil, errors.New("generator: name is empty")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("generator %s: %w", name, err)
	}
	return &Generator{name: name, topic: origin(name), cfg: cfg.withDefaults()}, nil
}

// Origin returns the topic name of the generator's records, "generator:<name>".
func (g *Generator) Origin() string { return g.topic }

func origin(name string) string { return "generator:" + name }

// Poll returns up to max next events. It returns as soon as at least one is
// available; with a Rate, it waits until the next is due. Once Count events
// are emitted it returns nothing more: it waits for ctx and returns nil, nil.
// The generator cannot fail, so ctx ending (deadline or cancel) is never an
// error either: the caller learns of cancellation from its own ctx.
func (g *Generator) Poll(ctx context.Context, max int) ([]*connector.Record, error) {
	if g.closed {
		return nil, ErrClosed
	}
	if max <= 0 {
		return nil, nil
	}
	for {
		end := g.end(time.Now())
		if g.next < end {
			return g.emit(int(min(end-g.next, int64(max)))), nil
		}
		if g.cfg.Count > 0 && g.next >= g.cfg.Count {
			<-ctx.Done()
			return nil, nil
		}
		t := time.NewTimer(time.Until(g.dueAt(g.next)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
	}
}

// end returns the exclusive upper bound of the seqs available at now.
func (g *Generator) end(now time.Time) int64 {
	end := int64(math.MaxInt64)
	if g.cfg.Rate > 0 {
		if !g.paced {
			g.paced, g.anchorAt, g.anchorSeq = true, now, g.next
		}
		produced := math.Floor(now.Sub(g.anchorAt).Seconds()*g.cfg.Rate) + 1
		if produced < float64(math.MaxInt64-g.anchorSeq) {
			end = g.anchorSeq + int64(produced)
		}
	}
	if g.cfg.Count > 0 {
		end = min(end, g.cfg.Count)
	}
	return end
}

// dueAt returns when event seq becomes available under the rate.
func (g *Generator) dueAt(seq int64) time.Time {
	if g.cfg.Rate == 0 {
		return time.Now()
	}
	return g.anchorAt.Add(time.Duration(float64(seq-g.anchorSeq) / g.cfg.Rate * float64(time.Second)))
}

// emit returns the next n events. Records and headers are allocated in one
// block per call, which costs a batch-lifetime retention for a large saving
// in allocations on the benchmark path.
func (g *Generator) emit(n int) []*connector.Record {
	recs := make([]connector.Record, n)
	hdrs := make([]connector.Header, n)
	out := make([]*connector.Record, n)
	for i := range recs {
		fill(&recs[i], hdrs[i:i+1:i+1], g.name, g.topic, g.cfg, g.next)
		out[i] = &recs[i]
		g.next++
	}
	return out
}

// Seek makes the next Poll start at cp's offset for the generator's
// partition, or at 0 if cp does not name it. Seeking beyond what the rate
// has produced so far restarts the pacing there rather than waiting for the
// clock to catch up: that is where a restarted daemon resumes.
func (g *Generator) Seek(cp connector.Checkpoint) {
	g.next = max(0, cp[connector.TopicPartition{Topic: g.Origin(), Partition: 0}])
	if g.paced && g.next >= g.end(time.Now()) {
		g.paced = false
	}
}

// Close makes later Polls fail with ErrClosed; a generator holds no
// resources.
func (g *Generator) Close() { g.closed = true }
