package files

import (
	"context"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

// The sink registers itself as `type: files`; see package component. A
// build links it with one import line in package component/all.
func init() {
	component.RegisterSink(component.Sink{
		Name:       "files",
		Summary:    "Parquet or JSON Lines files in Hive-style directories: exactly once by a manifest, replaced atomically, that commits rows, files and offsets",
		Fields:     fields,
		NewConfig:  func() component.Config { return new(Config) },
		Checkpoint: "the manifest (<path>/_connectd/manifest-<group>.json)",
		Store: func(cfg component.Config, env component.SinkEnv) connector.SinkStore {
			return NewStore(*cfg.(*Config), optionsOf(env))
		},
		Writer: func(cfg component.Config, env component.SinkEnv) connector.SinkWriter {
			return NewWriter(*cfg.(*Config), optionsOf(env))
		},
		Checkpoints: func(_ context.Context, cfg component.Config, env component.SinkEnv) (component.CheckpointStore, error) {
			return NewStore(*cfg.(*Config), optionsOf(env)), nil
		},
		Probe: func(cfg component.Config, env component.SinkEnv) (component.Probe, error) {
			return NewProbe(*cfg.(*Config), env), nil
		},
		Replay: &component.Replay{
			Outputs: []component.VersionedField{{Field: "path", Sep: "_v"}},
			Cutover: func(_ context.Context, cfg component.Config) (component.Switch, error) {
				p := cfg.(*Config).Path
				return component.Switch{Sink: "files", To: p,
					Note: "a directory has no alias: point readers at " + p}, nil
			},
		},
	})
}

func optionsOf(env component.SinkEnv) Options {
	return Options{Connector: env.Connector, DLQTopic: env.DLQTopic, Log: env.Log}
}

var fields = []component.Field{
	{Name: "path", Type: "string", Required: true,
		Description: "Root directory of the output; the sink keeps its manifests, staged rows and lock in <path>/_connectd and dead letters in <path>/_dead_letters."},
	{Name: "format", Type: "string", Default: FormatParquet, Description: "parquet or jsonl (JSON Lines)."},
	{Name: "compression", Type: "string", Default: DefaultCompression, Description: "Parquet codec: snappy, zstd, gzip or none (JSON Lines files are uncompressed)."},
	{Name: "partition_by", Type: "object",
		Description: "Hive-style directories: time (timestamp, json:dot.path as RFC 3339 or epoch milliseconds, or none; default timestamp), layout (Go time layout of name=value directories, default " + DefaultLayout + "), field (json:dot.path, a further <name>=<value> directory)."},
	{Name: "roll", Type: "object",
		Description: "When staged rows become a file: max_bytes (default 128MiB of staged JSON) and max_interval (default 5m after the first staged row), checked at each commit; the store rolls everything it owns when it closes."},
	{Name: "columns", Type: "map of strings", Default: "key: key, value: value",
		Description: "Column name → key, value, header:NAME (text) or json:dot.path with an optional ::type (int64, double, string, bool, timestamp; default string). event_id, topic, partition, offset and timestamp are always written."},
	{Name: "fsync", Type: "bool", Default: "true", Description: "Fsync files, staged rows, the manifest and their directories at each commit (false survives a process crash, not a machine crash)."},
	{Name: "lock_timeout", Type: "duration", Default: "30s", Description: "Longest wait for the directory's lock (one process commits at a time); a commit that waits longer is aborted and retried."},
}
