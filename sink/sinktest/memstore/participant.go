package memstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/connectd/connectd/connector"
)

// Prepared is the reference two-phase participant's backing state
// (connector.Participant): prepared batches by gid and the committed
// event IDs, one per application, shared by every participant opened on
// it as prepared transactions are shared by a database's sessions. Each
// step is one map operation under one mutex: a prepare, a commit and a
// rollback are atomic, and finishing a gid that is gone is success.
type Prepared struct {
	mu       sync.Mutex
	prepared map[string][]string // gid → event IDs
	applied  []string
}

// NewPrepared returns empty participant state.
func NewPrepared() *Prepared { return &Prepared{prepared: map[string][]string{}} }

// Open returns a participant on d.
func (d *Prepared) Open() *Participant { return &Participant{d: d} }

// Applied returns the committed event IDs, one per application.
func (d *Prepared) Applied() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.applied)
}

// Participant is one process's handle on Prepared.
type Participant struct {
	d      *Prepared
	closed bool
}

var errClosed = connector.NewCommitError(connector.Abortable, "memstore participant", errors.New("closed"))

var _ connector.Participant = (*Participant)(nil)

// Name implements connector.Participant.
func (p *Participant) Name() string { return "memstore" }

// Check implements connector.Participant: memory can always prepare.
func (p *Participant) Check(context.Context) error { return nil }

// Close makes later calls fail, as a closed session would; what it
// prepared stays prepared.
func (p *Participant) Close() { p.closed = true }

// Prepare keeps recs' event IDs under gid, invisible until CommitPrepared.
func (p *Participant) Prepare(_ context.Context, gid string, recs []*connector.Record) error {
	if p.closed {
		return errClosed
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.EventID
	}
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	p.d.prepared[gid] = ids
	return nil
}

// CommitPrepared applies gid's batch and forgets gid.
func (p *Participant) CommitPrepared(_ context.Context, gid string) error {
	if p.closed {
		return errClosed
	}
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	p.d.applied = append(p.d.applied, p.d.prepared[gid]...)
	delete(p.d.prepared, gid)
	return nil
}

// RollbackPrepared forgets gid's batch.
func (p *Participant) RollbackPrepared(_ context.Context, gid string) error {
	if p.closed {
		return errClosed
	}
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	delete(p.d.prepared, gid)
	return nil
}

// Prepared lists the gids under prefix.
func (p *Participant) Prepared(_ context.Context, prefix string) ([]string, error) {
	if p.closed {
		return nil, errClosed
	}
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	var gids []string
	for g := range p.d.prepared {
		if strings.HasPrefix(g, prefix) {
			gids = append(gids, g)
		}
	}
	slices.Sort(gids)
	return gids, nil
}
