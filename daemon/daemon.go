// Package daemon hosts connectors: it starts the embedded broker when the
// config asks for one, runs every connector in its own goroutine so that one
// failing connector (an error or even a panic) shows FAILED without stopping
// the others, and stops them all within their shutdown timeouts.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/embedded"
	"github.com/connectd/connectd/pipeline"
)

// Daemon runs the connectors of one config.
type Daemon struct {
	cfg    *config.Config
	specs  []*pipeline.Spec
	log    *slog.Logger
	broker *kfake.Cluster
	// ClientOpts are extra Kafka client options for every connector.
	ClientOpts []kgo.Opt

	mu         sync.Mutex
	connectors map[string]*connector.Connector
	wg         sync.WaitGroup
	cancel     context.CancelFunc
}

// New decodes every connector of cfg; it fails with every config error at once.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	var specs []*pipeline.Spec
	var errs config.Errors
	for _, cc := range cfg.Connectors {
		s, err := pipeline.Decode(cc)
		if err != nil {
			var ce config.Errors
			if errors.As(err, &ce) {
				errs = append(errs, ce...)
				continue
			}
			return nil, err
		}
		specs = append(specs, s)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &Daemon{cfg: cfg, specs: specs, log: log, connectors: map[string]*connector.Connector{}}, nil
}

// Brokers are the Kafka bootstrap addresses connectors use. A configured
// entry may hold a comma-separated list, as Kafka's bootstrap.servers does,
// so brokers: [${KAFKA_BROKERS}] takes "a:9092,b:9092".
func (d *Daemon) Brokers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.broker != nil {
		return d.broker.ListenAddrs()
	}
	return SplitBrokers(d.cfg.Kafka.Brokers)
}

// SplitBrokers splits comma-separated entries and drops empty ones.
func SplitBrokers(entries []string) []string {
	var out []string
	for _, e := range entries {
		for _, b := range strings.Split(e, ",") {
			if b = strings.TrimSpace(b); b != "" {
				out = append(out, b)
			}
		}
	}
	return out
}

// Start starts the embedded broker (if configured) and every connector.
func (d *Daemon) Start(ctx context.Context) error {
	if e := d.cfg.Kafka.Embedded; e != nil {
		b, err := embedded.Start(*e)
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.broker = b
		d.mu.Unlock()
		d.log.Info("embedded Kafka broker started", "listen", b.ListenAddrs(), "data_dir", e.DataDir)
	}
	env := pipeline.Env{
		Brokers:      d.Brokers(),
		InstanceID:   d.cfg.InstanceID,
		OffsetsTopic: d.cfg.OffsetsTopic,
		ClientOpts:   d.ClientOpts,
		Logger:       d.log,
		OnFenced: func(name string) {
			d.log.Warn("connector session fenced by a newer owner; rejoining", "connector", name)
		},
	}
	ctx, d.cancel = context.WithCancel(ctx)
	for _, s := range d.specs {
		c := pipeline.Build(s, env)
		d.mu.Lock()
		d.connectors[c.Name()] = c
		d.mu.Unlock()
		d.wg.Add(1)
		go d.run(ctx, c)
	}
	return nil
}

// run runs one connector, turning a panic into FAILED for that connector
// alone: the other connectors keep running.
func (d *Daemon) run(ctx context.Context, c *connector.Connector) {
	defer d.wg.Done()
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			c.MarkFailed(err)
			d.log.Error("connector panicked", "connector", c.Name(), "err", err)
		}
	}()
	_ = c.Run(ctx) // a failure is recorded in the connector's status
}

// Stop stops every connector (each commits or aborts its open batch within
// its shutdown timeout), then the embedded broker.
func (d *Daemon) Stop() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	d.mu.Lock()
	b := d.broker
	d.broker = nil
	d.mu.Unlock()
	if b != nil {
		b.Close()
	}
}

// Wait blocks until every connector has returned (stopped or failed).
func (d *Daemon) Wait() { d.wg.Wait() }

// Names returns the connector names, sorted.
func (d *Daemon) Names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.connectors))
	for n := range d.connectors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Status returns one connector's status.
func (d *Daemon) Status(name string) (connector.Status, bool) {
	d.mu.Lock()
	c, ok := d.connectors[name]
	d.mu.Unlock()
	if !ok {
		return connector.Status{}, false
	}
	return c.Status(), true
}
