package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

// The sink registers itself as `type: postgres`; see package component.
func init() {
	component.RegisterSink(component.Sink{
		Name:        "postgres",
		Summary:     "PostgreSQL table: exactly once by UPSERT on event IDs with the offsets in the same transaction, or a two-phase participant",
		Fields:      fields,
		NewConfig:   func() component.Config { return new(Config) },
		Checkpoint:  "the offsets table",
		WindowState: true,
		Store: func(cfg component.Config, env component.SinkEnv) connector.SinkStore {
			return New(*cfg.(*Config), Options{Connector: env.Connector, DLQTopic: env.DLQTopic, ExactlyOnce: true, Logger: env.Log})
		},
		// An at_least_once table is plainly inserted into: the baseline
		// the benchmark compares the UPSERT against.
		Writer: func(cfg component.Config, env component.SinkEnv) connector.SinkWriter {
			return New(*cfg.(*Config), Options{Connector: env.Connector, DLQTopic: env.DLQTopic, Logger: env.Log})
		},
		// A participant's checkpoint is the group's, committed in the
		// Kafka transaction that decides, so no offsets table.
		Participant: func(cfg component.Config, env component.SinkEnv) connector.Participant {
			return New(*cfg.(*Config), Options{Connector: env.Connector, DLQTopic: env.DLQTopic, ExactlyOnce: true, TwoPhase: true, Logger: env.Log})
		},
		Probe: func(cfg component.Config, env component.SinkEnv) (component.Probe, error) {
			return &probe{cfg: cfg.(*Config), connector: env.Connector}, nil
		},
		Replay: &component.Replay{
			Outputs: []component.VersionedField{{Field: "table", Sep: "_v"}, {Field: "dlq_table", Sep: "_v"}},
			Cutover: cutover,
		},
		Checkpoints: func(_ context.Context, cfg component.Config, env component.SinkEnv) (component.CheckpointStore, error) {
			return New(*cfg.(*Config), Options{Connector: env.Connector, DLQTopic: env.DLQTopic, ExactlyOnce: true}), nil
		},
	})
}

var fields = []component.Field{
	{Name: "dsn", Type: "string", Required: true, Secret: true,
		Description: "pgx connection string (URL or keyword=value); its password is masked wherever the config is shown."},
	{Name: "table", Type: "string", Required: true,
		Description: "Target table, optionally schema-qualified."},
	{Name: "columns", Type: "map of strings",
		Description: "Column name → source: event_id, key, value (jsonb), value_text, timestamp, topic, partition, offset, header:NAME, or json:dot.path with an optional ::type (text, bigint, numeric, boolean, jsonb). The event_id column is always written."},
	{Name: "conflict", Type: "string", Default: DoNothing,
		Description: "What an UPSERT does with an existing event ID: do_nothing (first write wins) or do_update (last write wins)."},
	{Name: "view", Type: "string",
		Description: "A view over the table that readers query; a Kappa promote redefines it over the replay's table in one transaction."},
	{Name: "auto_create", Type: "bool", Default: "false",
		Description: "Create the table, dead-letter table, offsets table and state table when missing."},
	{Name: "offsets_table", Type: "string", Default: DefaultOffsetsTable,
		Description: "Table holding exactly_once checkpoints and claim epochs per connector group and partition."},
	{Name: "dlq_table", Type: "string", Default: "<table>_dlq",
		Description: "Table receiving dead letters (errors.tolerance: all), in the batch's transaction."},
	{Name: "batch_size", Type: "int", Default: "5000",
		Description: "Most rows per statement; a batch is written in chunks of this size in one transaction."},
	{Name: "test_apply_counter", Type: "bool", Default: "false",
		Description: "For exactly-once tests: an apply_count column counting every write of an event ID."},
}

// cutover points the sink's view, if it has one, at its table, in one
// transaction (see PointView).
func cutover(ctx context.Context, cfg component.Config) (component.Switch, error) {
	c := cfg.(*Config)
	sw := component.Switch{Sink: "postgres", Readers: c.View, To: c.Table}
	if c.View == "" {
		sw.Note = "the sink has no view: point readers at table " + c.Table
		return sw, nil
	}
	conn, err := pgx.Connect(ctx, c.DSN)
	if err != nil {
		return sw, fmt.Errorf("promote: postgres view %s: %w", c.View, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if sw.From, err = PointView(ctx, conn, c.View, c.Table); err != nil {
		return sw, fmt.Errorf("promote: postgres view %s: %w", c.View, err)
	}
	sw.Switched = true
	return sw, nil
}
