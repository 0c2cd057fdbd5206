package redis

import (
	"context"
	"fmt"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

// The sink registers itself as `type: redis`; see package component.
func init() {
	component.RegisterSink(component.Sink{
		Name:        "redis",
		Summary:     "Redis keys, hashes or streams: exactly once by one Lua script per batch that writes and moves the offsets hash",
		Fields:      fields,
		NewConfig:   func() component.Config { return new(Config) },
		Checkpoint:  "the offsets hash",
		WindowState: true,
		// Both connect at first use (see lazyStore): Redis down at start
		// is a retried failure of the first commit.
		Store: func(cfg component.Config, env component.SinkEnv) connector.SinkStore {
			return &lazyStore{cfg: *cfg.(*Config), dlq: env.DLQTopic}
		},
		Writer: func(cfg component.Config, env component.SinkEnv) connector.SinkWriter {
			return &lazyWriter{cfg: *cfg.(*Config), dlq: env.DLQTopic}
		},
		Probe: func(cfg component.Config, env component.SinkEnv) (component.Probe, error) {
			return newProbe(*cfg.(*Config), env)
		},
		Replay: &component.Replay{
			Outputs: []component.VersionedField{{Field: "key_prefix", Sep: "v", Always: true}},
			Cutover: cutover,
		},
		Checkpoints: func(ctx context.Context, cfg component.Config, env component.SinkEnv) (component.CheckpointStore, error) {
			return NewStore(ctx, *cfg.(*Config), env.DLQTopic)
		},
	})
}

var fields = []component.Field{
	{Name: "addr", Type: "string", Description: "Server host:port; exactly one of addr and url is required."},
	{Name: "url", Type: "string", Secret: true, Description: "A redis:// or rediss:// URL (user, password and db may be in it)."},
	{Name: "password", Type: "string", Secret: true, Description: "Password; overrides the URL's."},
	{Name: "tls", Type: "object",
		Description: "TLS with explicit files: ca_file (default: the system's roots), cert_file and key_file (mutual TLS), server_name (default: the host dialed); any field set turns TLS on, whatever the URL's scheme."},
	{Name: "db", Type: "int", Default: "0", Description: "Database number; when not 0, overrides the URL's."},
	{Name: "key", Type: "string", Default: "{event_id}",
		Description: "Template of a record's data key: {event_id}, {key}, {topic}, {partition}, {offset}, {json:dot.path}; {{ and }} are literal braces."},
	{Name: "key_prefix", Type: "string", Description: "Prepended to every key the sink writes."},
	{Name: "value", Type: "string", Default: "value",
		Description: "value (the whole record value), json:dot.path (one field), or fields (a JSON object's top-level fields, for hash and stream)."},
	{Name: "structure", Type: "string", Default: "string", Description: "string (SET), hash (HSET) or stream (XADD)."},
	{Name: "ttl", Type: "duration", Default: "0", Description: "When positive, expire each data key that long after its last write."},
	{Name: "prefix_key", Type: "string",
		Description: "A key holding the prefix readers should use; a Kappa promote swaps it to the replay's prefix in one script."},
	{Name: "offsets_key", Type: "string", Default: "connectd:offsets:{group}",
		Description: "Hash holding exactly_once checkpoints and claim epochs; must contain {group}."},
	{Name: "dlq_stream", Type: "string", Default: DefaultDLQStream, Description: "Stream receiving dead letters (errors.tolerance: all) by XADD."},
	{Name: "audit_log", Type: "bool", Default: "false",
		Description: "Append <target>:<event_id> to connectd:applied-log on every application, in the same script (for tests and audits)."},
	{Name: "test_apply_counter", Type: "bool", Default: "false", Description: "For exactly-once tests: INCR connectd:applied:<event_id> on every application."},
	{Name: "batch_size", Type: "int", Default: "5000", Description: "Records per pipeline round trip with at_least_once (an exactly_once batch is always one script)."},
	{Name: "timeout", Type: "duration", Default: "10s", Description: "Bounds dialing, each read and each write; a commit that times out has an unknown outcome."},
}

// cutover swaps the sink's prefix key, if it has one, to its key prefix, in
// one script (see SwapPrefix).
func cutover(ctx context.Context, cfg component.Config) (component.Switch, error) {
	c := cfg.(*Config)
	sw := component.Switch{Sink: "redis", Readers: c.PrefixKey, To: c.KeyPrefix}
	if c.PrefixKey == "" {
		sw.Note = "the sink has no prefix_key: point readers at key prefix " + c.KeyPrefix
		return sw, nil
	}
	var err error
	if sw.From, err = SwapPrefix(ctx, *c, c.KeyPrefix); err != nil {
		return sw, fmt.Errorf("promote: %w", err)
	}
	sw.Switched = true
	return sw, nil
}
