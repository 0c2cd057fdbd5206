package files

import (
	"context"

	"github.com/connectd/connectd/connector"
)

// Checkpoints returns group's stored checkpoints. The manifest is
// replaced atomically, so reading it needs no lock.
func (s *Store) Checkpoints(_ context.Context, group string) (connector.Checkpoint, error) {
	if s.err != nil {
		return nil, s.err
	}
	m, err := readManifest(s.root(), manifestPath(groupKey(group)))
	if err != nil {
		return nil, err
	}
	return m.checkpoint(), nil
}

// SetCheckpoints sets the next offsets of cp's partitions, keeping their
// claim epochs (a connector's owner from before the change stays fenced
// by its next claim's epoch, and by the moved checkpoint meanwhile). The
// staged rows of those partitions roll into files in the same manifest
// replacement: rows already committed stay in the output, and rows read
// again after a rewind start new files instead of joining a staged
// segment that holds them already.
func (s *Store) SetCheckpoints(ctx context.Context, group string, cp connector.Checkpoint) error {
	return s.commit(ctx, "set checkpoints", groupKey(group), batch{
		edit: func(m *manifest) {
			for tp, n := range cp {
				m.partOrNew(tp).Next = n
			}
		},
		rollAll: func(p *partState) bool { _, ok := cp[p.tp()]; return ok },
	})
}

// ResetCheckpoints forgets every partition's checkpoint, keeping the
// epochs, and rolls every staged row into files (see SetCheckpoints). The
// files stay: a replay from the start writes its rows again, into files
// of the same names where the offset ranges match (replacing them) and
// beside them where they do not.
func (s *Store) ResetCheckpoints(ctx context.Context, group string) error {
	return s.commit(ctx, "reset checkpoints", groupKey(group), batch{
		edit: func(m *manifest) {
			for _, p := range m.Partitions {
				p.Next = connector.NoCheckpoint
			}
		},
		rollAll: func(*partState) bool { return true },
	})
}
