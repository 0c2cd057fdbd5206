// Package postgres is connectd's PostgreSQL sink. With exactly_once it keeps
// each batch's rows and the input checkpoint in one database transaction: a
// bulk UPSERT keyed on event IDs, the dead-letter rows, and a compare-and-set
// of the offsets rows, committed together (txn.SinkOffsets drives it through
// the txn.SinkStore interface). With at_least_once it is a plain bulk INSERT
// (txn.SinkWriter), the baseline the benchmark compares against.
package postgres

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Conflict policies: what an UPSERT does with a row whose event ID exists.
const (
	// DoNothing keeps the first write (the default): a replayed batch
	// changes nothing.
	DoNothing = "do_nothing"
	// DoUpdate overwrites the mapped columns: the last write wins.
	DoUpdate = "do_update"
)

// Defaults of the config fields.
const (
	DefaultOffsetsTable = "connectd_offsets"
	DefaultBatchSize    = 5000
	// EventIDColumn is the key column, always present: text PRIMARY KEY
	// with exactly_once.
	EventIDColumn = "event_id"
	// ApplyCountColumn is the test-mode counter column.
	ApplyCountColumn = "apply_count"
)

// Config is the `sink: {type: postgres}` section.
type Config struct {
	// DSN is a pgx connection string (URL or keyword=value). Required.
	DSN string `yaml:"dsn"`
	// Table is the target table, optionally schema-qualified. Required.
	Table string `yaml:"table"`
	// Columns maps a column name to its source: event_id, key, value
	// (jsonb), value_text, timestamp, topic, partition, offset,
	// header:NAME, or json:dot.path with an optional ::type (text, bigint,
	// numeric, boolean, jsonb; default jsonb). The event_id column is
	// always written and needs no entry.
	Columns map[string]string `yaml:"columns"`
	// Conflict is do_nothing (default: first write wins) or do_update
	// (last write wins).
	Conflict string `yaml:"conflict"`
	// View, when set, is the name readers query instead of Table: a view
	// (SELECT * FROM table) the sink creates at start if it does not exist,
	// and leaves alone if it does. A Kappa promote (connectd promote)
	// redefines it, in one transaction, over the table of the replay that
	// takes over, so readers switch from the old results to the new ones
	// at once. Optionally schema-qualified.
	View string `yaml:"view"`
	// AutoCreate creates the table, the dead-letter table and the offsets
	// table if missing, at start, and the state table (<table>_state) of a
	// connector with a stateful stage at its first state load or write.
	// Default false.
	AutoCreate bool `yaml:"auto_create"`
	// OffsetsTable holds the checkpoints (exactly_once). Default
	// connectd_offsets.
	OffsetsTable string `yaml:"offsets_table"`
	// DLQTable receives dead-lettered records when the connector has
	// errors.tolerance: all. Default <table>_dlq.
	DLQTable string `yaml:"dlq_table"`
	// BatchSize is the most rows per INSERT statement; a batch is written
	// in chunks of this size, all in one transaction. Default 5000.
	BatchSize int `yaml:"batch_size"`
	// TestApplyCounter, for exactly-once tests: an apply_count column
	// incremented on every conflicting write, a non-idempotent side effect
	// that shows double application an UPSERT would hide. Default false.
	TestApplyCounter bool `yaml:"test_apply_counter"`

	cols []column // parsed Columns, sorted by name
}

// Validate applies defaults and checks the config; errors start with the
// field name ("table: ...") so they can be positioned.
func (c *Config) Validate() error {
	if c.DSN == "" {
		return errors.New("dsn: a PostgreSQL connection string is required")
	}
	if _, err := pgxpool.ParseConfig(c.DSN); err != nil {
		return fmt.Errorf("dsn: %v", redactErr(err))
	}
	if c.Table == "" {
		return errors.New("table: a target table is required")
	}
	if _, err := parseIdent(c.Table); err != nil {
		return fmt.Errorf("table: %v", err)
	}
	if c.View != "" {
		if _, err := parseIdent(c.View); err != nil {
			return fmt.Errorf("view: %v", err)
		}
		if c.View == c.Table {
			return errors.New("view: must differ from table")
		}
	}
	switch c.Conflict {
	case "":
		c.Conflict = DoNothing
	case DoNothing, DoUpdate:
	default:
		return fmt.Errorf("conflict: %q is not %s or %s", c.Conflict, DoNothing, DoUpdate)
	}
	if c.OffsetsTable == "" {
		c.OffsetsTable = DefaultOffsetsTable
	}
	if _, err := parseIdent(c.OffsetsTable); err != nil {
		return fmt.Errorf("offsets_table: %v", err)
	}
	if c.DLQTable == "" {
		c.DLQTable = c.Table + "_dlq"
	}
	if _, err := parseIdent(c.DLQTable); err != nil {
		return fmt.Errorf("dlq_table: %v", err)
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize < 0 {
		return errors.New("batch_size: must be positive")
	}
	names := make([]string, 0, len(c.Columns))
	for name := range c.Columns {
		names = append(names, name)
	}
	slices.Sort(names)
	c.cols = c.cols[:0]
	for _, name := range names {
		field := "columns." + name
		if name == "" || strings.ContainsRune(name, 0) {
			return fmt.Errorf("columns: %q is not a column name", name)
		}
		if name == EventIDColumn || (c.TestApplyCounter && name == ApplyCountColumn) {
			return fmt.Errorf("%s: the %s column is written by the sink itself; remove this entry", field, name)
		}
		col, err := parseColumn(name, c.Columns[name])
		if err != nil {
			return fmt.Errorf("%s: %v", field, err)
		}
		c.cols = append(c.cols, col)
	}
	return nil
}

// parseIdent splits a possibly schema-qualified name into its parts.
func parseIdent(name string) ([]string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("%q: want table or schema.table", name)
	}
	for _, p := range parts {
		if p == "" || strings.ContainsRune(p, 0) {
			return nil, fmt.Errorf("%q has an empty part", name)
		}
	}
	return parts, nil
}

// redactErr drops the DSN, which may hold a password, from pgx's parse
// errors ("cannot parse `DSN`: reason").
func redactErr(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); strings.HasPrefix(msg, "cannot parse") && i >= 0 {
		return errors.New("cannot parse the connection string: " + msg[i+2:])
	}
	return err
}

// QuotedTable, QuotedDLQTable and QuotedOffsetsTable are the configured
// tables as SQL identifiers (for the checker). cfg must have been validated.
func (c *Config) QuotedTable() string        { return ident(c.Table) }
func (c *Config) QuotedDLQTable() string     { return ident(c.DLQTable) }
func (c *Config) QuotedOffsetsTable() string { return ident(c.OffsetsTable) }

// SourceColumn returns the column mapped from source spec (e.g. "offset"),
// if any. cfg must have been validated.
func (c *Config) SourceColumn(spec string) (string, bool) {
	for _, col := range c.cols {
		if c.Columns[col.name] == spec {
			return col.name, true
		}
	}
	return "", false
}
