package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

var _ component.WindowProbe = (*probe)(nil)

// Windows reads a windowed connector's rows as Snapshot does (one
// repeatable-read snapshot with the checkpoint with exactly_once), every
// row unfiltered with its origin, plus the columns that hold result
// values: a value or value_text column (the whole result) and json:<field>
// columns naming a field of the result (key, window_start, window_end or
// an aggregate). The window state is the sink's own tables.
func (p *probe) Windows(ctx context.Context, group string, withCheckpoint bool, below connector.Checkpoint, stopped bool) (component.WindowSnapshot, error) {
	extra, fields := resultColumns(p.cfg)
	snap, err := ReadSnapshot(ctx, p.cfg, group, withCheckpoint, below, stopped, extra)
	if err != nil {
		return component.WindowSnapshot{}, fmt.Errorf("reading %s: %w", p.cfg.Table, err)
	}
	if p.state == nil {
		p.state = New(*p.cfg, Options{Connector: p.connector, ExactlyOnce: withCheckpoint})
	}
	outs := make([]component.WindowOutput, 0, len(snap.Rows))
	for _, row := range snap.Rows {
		out := component.WindowOutput{Dest: row.Table, ID: row.ID, Origin: row.Origin}
		if row.Table == p.cfg.Table && len(fields) > 0 {
			out.Stored = &component.StoredResult{}
			for i, f := range fields {
				switch {
				case f.whole && row.Extra[i] != nil:
					out.Stored.Whole = []byte(*row.Extra[i])
				case f.whole:
					out.Stored.Whole = []byte("null")
				default:
					if out.Stored.Fields == nil {
						out.Stored.Fields = map[string]component.StoredField{}
					}
					out.Stored.Fields[f.name] = component.StoredField{Text: row.Extra[i], JSON: f.json}
				}
			}
		}
		outs = append(outs, out)
	}
	return component.WindowSnapshot{Checkpoint: snap.Checkpoint, Outputs: outs, State: p.state,
		Letters: p.cfg.DLQTable, LaterVisible: !withCheckpoint,
		ApplyCountViolations: snap.ApplyCountViolations}, nil
}

// resultField is a column of the table that holds result values.
type resultField struct {
	whole bool   // value or value_text: the whole result
	name  string // else the result field a json:<name> column holds
	json  bool   // jsonb: compared as JSON; else as text
}

// resultColumns returns the SELECT expressions (as text) of the columns
// that hold result values, and what each holds.
func resultColumns(pg *Config) ([]string, []resultField) {
	extra := []string{} // not nil: ReadSnapshot then returns the rows
	var fields []resultField
	for col, src := range pg.Columns {
		f := resultField{}
		switch {
		case src == "value" || src == "value_text":
			f.whole = true
		case strings.HasPrefix(src, "json:"):
			path, typ, _ := strings.Cut(strings.TrimPrefix(src, "json:"), "::")
			if strings.Contains(path, ".") {
				continue // results are flat: a nested path holds nothing of them
			}
			f.name, f.json = path, typ == "" || typ == "jsonb"
		default:
			continue
		}
		extra = append(extra, pgx.Identifier{col}.Sanitize()+"::text")
		fields = append(fields, f)
	}
	return extra, fields
}
