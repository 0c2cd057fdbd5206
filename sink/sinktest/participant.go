package sinktest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/connectd/connectd/connector"
)

// ParticipantHarness is one fresh namespace of a two-phase participant
// (connector.Participant, as txn.TwoPhase drives it).
type ParticipantHarness struct {
	// Open opens a participant on the namespace, as a process would:
	// every call sees the same data and the same prepared transactions.
	// The suite closes what it opens.
	Open func() connector.Participant
	// Visible returns the event IDs of the committed output, one per
	// application (so a double application shows twice).
	Visible func() []string
}

// Participant runs the two-phase participant table against the
// namespaces newHarness returns, one per property:
//
//   - a prepared batch is listed by Prepared and invisible;
//   - CommitPrepared makes it visible, once, and it is no longer listed;
//   - RollbackPrepared discards it;
//   - finishing a finished or unknown gid, either way, is success and
//     changes nothing (recovery and the owner may both try);
//   - a prepared batch outlives the process that prepared it: another
//     one lists it and commits it by gid alone;
//   - Prepared lists only the gids under its prefix (recovery must not
//     touch another connector's transactions);
//   - gids are independent: committing one and rolling back another
//     applies exactly the first's records.
func Participant(t *testing.T, newHarness func(t *testing.T) ParticipantHarness) {
	for _, p := range participantProperties {
		t.Run(p.name, func(t *testing.T) {
			h := newHarness(t)
			s := &participantSuite{t: t, h: h, prefix: "sinktest-" + strings.ReplaceAll(t.Name(), "/", "-") + ":"}
			t.Cleanup(func() {
				for _, p := range s.opened {
					p.Close()
				}
			})
			p.check(s)
		})
	}
}

type participantSuite struct {
	t      *testing.T
	h      ParticipantHarness
	prefix string
	opened []connector.Participant
}

func (s *participantSuite) open() connector.Participant {
	s.t.Helper()
	p := s.h.Open()
	s.opened = append(s.opened, p)
	if err := p.Check(ctx(s.t)); err != nil {
		s.t.Fatalf("check %s: %v", p.Name(), err)
	}
	return p
}

func (s *participantSuite) gid(n int) string { return fmt.Sprintf("%s%d", s.prefix, n) }

func (s *participantSuite) prepare(p connector.Participant, gid string, recs []*connector.Record) {
	s.t.Helper()
	if err := p.Prepare(ctx(s.t), gid, recs); err != nil {
		s.t.Fatalf("prepare %s: %v", gid, err)
	}
}

// wantPrepared checks what Prepared lists under prefix.
func (s *participantSuite) wantPrepared(what string, p connector.Participant, prefix string, gids ...string) {
	s.t.Helper()
	got, err := p.Prepared(ctx(s.t), prefix)
	if err != nil {
		s.t.Fatalf("%s: prepared: %v", what, err)
	}
	got = slices.Clone(got)
	slices.Sort(got)
	gids = slices.Clone(gids)
	slices.Sort(gids)
	if !slices.Equal(got, gids) {
		s.t.Errorf("%s: Prepared(%q) = %v, want %v", what, prefix, got, gids)
	}
}

// wantVisible checks the committed output: recs, each once.
func (s *participantSuite) wantVisible(what string, recs ...*connector.Record) {
	s.t.Helper()
	got := slices.Clone(s.h.Visible())
	slices.Sort(got)
	var want []string
	for _, r := range recs {
		want = append(want, r.EventID)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		s.t.Errorf("%s: visible %d %s, want %d %s", what, len(got), sample(got), len(want), sample(want))
	}
}

func (s *participantSuite) finish(what string, f func(context.Context, string) error, gid string) {
	s.t.Helper()
	if err := f(ctx(s.t), gid); err != nil {
		s.t.Fatalf("%s %s: %v", what, gid, err)
	}
}

var participantProperties = []struct {
	name  string
	check func(s *participantSuite)
}{
	{"PreparedIsListedAndInvisible", func(s *participantSuite) {
		p := s.open()
		s.prepare(p, s.gid(1), records(tp0, 0, 10))
		s.wantPrepared("after prepare", p, s.prefix, s.gid(1))
		s.wantVisible("after prepare")
		s.finish("rollback", p.RollbackPrepared, s.gid(1))
	}},
	{"CommitPreparedAppliesOnce", func(s *participantSuite) {
		p := s.open()
		s.prepare(p, s.gid(1), records(tp0, 0, 10))
		s.finish("commit", p.CommitPrepared, s.gid(1))
		s.wantVisible("after commit prepared", records(tp0, 0, 10)...)
		s.wantPrepared("after commit prepared", p, s.prefix)
	}},
	{"RollbackPreparedDiscards", func(s *participantSuite) {
		p := s.open()
		s.prepare(p, s.gid(1), records(tp0, 0, 10))
		s.finish("rollback", p.RollbackPrepared, s.gid(1))
		s.wantVisible("after rollback prepared")
		s.wantPrepared("after rollback prepared", p, s.prefix)
		// The same records prepare again under another gid (nothing of
		// the rolled-back one holds them).
		s.prepare(p, s.gid(2), records(tp0, 0, 10))
		s.finish("commit", p.CommitPrepared, s.gid(2))
		s.wantVisible("after the records' second prepare, committed", records(tp0, 0, 10)...)
	}},
	{"FinishingAgainIsSuccess", func(s *participantSuite) {
		p := s.open()
		s.prepare(p, s.gid(1), records(tp0, 0, 5))
		s.prepare(p, s.gid(2), records(tp1, 0, 5))
		s.finish("commit", p.CommitPrepared, s.gid(1))
		s.finish("rollback", p.RollbackPrepared, s.gid(2))
		s.finish("commit again", p.CommitPrepared, s.gid(1))
		s.finish("rollback after commit", p.RollbackPrepared, s.gid(1))
		s.finish("rollback again", p.RollbackPrepared, s.gid(2))
		s.finish("commit after rollback", p.CommitPrepared, s.gid(2))
		s.finish("commit of an unknown gid", p.CommitPrepared, s.gid(9))
		s.finish("rollback of an unknown gid", p.RollbackPrepared, s.gid(9))
		s.wantVisible("after finishing twice", records(tp0, 0, 5)...)
		s.wantPrepared("after finishing twice", p, s.prefix)
	}},
	{"PreparedOutlivesItsProcess", func(s *participantSuite) {
		a := s.open()
		s.prepare(a, s.gid(1), records(tp0, 0, 10))
		a.Close()
		b := s.open()
		s.wantPrepared("another process", b, s.prefix, s.gid(1))
		s.wantVisible("after the preparer closed")
		s.finish("commit by gid from another process", b.CommitPrepared, s.gid(1))
		s.wantVisible("after another process committed", records(tp0, 0, 10)...)
	}},
	{"PreparedListsOnlyItsPrefix", func(s *participantSuite) {
		p := s.open()
		mine, other := s.prefix+"mine:", s.prefix+"other:"
		s.prepare(p, mine+"1", records(tp0, 0, 3))
		s.prepare(p, other+"1", records(tp1, 0, 3))
		s.wantPrepared("my prefix", p, mine, mine+"1")
		s.wantPrepared("the other prefix", p, other, other+"1")
		s.wantPrepared("a prefix of both", p, s.prefix, mine+"1", other+"1")
		for _, g := range []string{mine + "1", other + "1"} {
			s.finish("rollback", p.RollbackPrepared, g)
		}
	}},
	{"GIDsAreIndependent", func(s *participantSuite) {
		p := s.open()
		s.prepare(p, s.gid(1), records(tp0, 0, 10))
		s.prepare(p, s.gid(2), records(tp1, 0, 10))
		s.prepare(p, s.gid(3), records(tp2, 0, 10))
		s.finish("commit", p.CommitPrepared, s.gid(2))
		s.finish("rollback", p.RollbackPrepared, s.gid(1))
		s.wantPrepared("one of three left", p, s.prefix, s.gid(3))
		s.finish("commit", p.CommitPrepared, s.gid(3))
		s.wantVisible("after committing two of three", append(records(tp1, 0, 10), records(tp2, 0, 10)...)...)
	}},
}
