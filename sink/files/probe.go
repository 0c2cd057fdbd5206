package files

import (
	"context"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/connector"
)

// Locations of the output, as the probe's IDs and Route name them: a row's
// partition directory (NoDir without partitioning), or DeadLetters.
const (
	NoDir       = "."
	DeadLetters = "dead_letters"
)

// probe is the checker's view of the sink (package verify): the rows the
// manifest lists (in files, still staged, or at a temporary name after a
// crash) and the data files of the connector it does not list, each row
// once per copy, qualified by its partition directory, so a duplicate, a
// loss and a row in the wrong directory all show.
type probe struct {
	cfg       Config
	connector string
	dlq       string
}

// NewProbe returns the probe of the sink cfg describes, for the connector
// and dead-letter topic of env.
func NewProbe(cfg Config, env component.SinkEnv) component.Probe {
	return &probe{cfg: cfg, connector: env.Connector, dlq: env.DLQTopic}
}

// Snapshot reads the group's manifest and files under the directory's
// lock, so no commit runs meanwhile: the checkpoint and the rows are one
// consistent view. withCheckpoint false reads the at_least_once writer's
// output, which below filters.
func (p *probe) Snapshot(ctx context.Context, group string, withCheckpoint bool, below connector.Checkpoint, stopped bool) (component.ProbeSnapshot, error) {
	var snap component.ProbeSnapshot
	var out *Output
	var err error
	if withCheckpoint {
		out, err = ReadOutput(ctx, p.cfg, p.connector, group)
	} else {
		out, err = ReadAtLeastOnceOutput(ctx, p.cfg, p.connector)
	}
	if err != nil {
		return snap, err
	}
	if withCheckpoint {
		snap.Checkpoint = out.Checkpoint
	}
	add := func(loc string, files []File) {
		for _, f := range files {
			for _, r := range f.Rows {
				id := loc + ":" + r.EventID
				if loc == "" {
					id = location(f.Dir) + ":" + r.EventID
				}
				switch {
				case below == nil || below.Contains(r.Origin):
					snap.IDs = append(snap.IDs, id)
				case stopped:
					snap.Beyond = append(snap.Beyond, id)
				}
			}
		}
	}
	add("", out.Files)
	add("", out.Staged)
	add("", out.Unlisted)
	add(DeadLetters, out.DeadLetters)
	return snap, nil
}

func location(dir string) string {
	if dir == "" {
		return NoDir
	}
	return dir
}

// Route is where the sink puts r: the dead letters for a record of the
// dead-letter topic or one the sink cannot write (with a dead-letter
// topic), else its partition directory.
func (p *probe) Route(r *connector.Record, dlqTopic string) string {
	if dlqTopic != "" && r.Topic == dlqTopic {
		return DeadLetters
	}
	m, err := p.cfg.mapRecord(r)
	if err != nil && dlqTopic != "" {
		return DeadLetters
	}
	return location(m.dir)
}

func (p *probe) Close() {}
