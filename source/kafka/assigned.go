package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/connector"
)

// The group coordinator's view of what this member holds, for status.
//
// franz-go does not tell a client's current assignment, and the callbacks
// that would (OnPartitionsAssigned, Revoked, Lost) hold one function each,
// which the commit protocols set for their own ends. So the source asks
// the coordinator (DescribeGroups): once per group generation of the
// protocol's current client, since a member's assignment changes only with
// a new generation or a new member ID. A member the coordinator no longer
// lists (expelled at its session timeout) holds nothing, even before its
// client notices.
const (
	// assignmentTimeout bounds one DescribeGroups and OffsetFetch.
	assignmentTimeout = 5 * time.Second
	// assignmentRetry spaces the questions while the group rebalances
	// (it shows assignments only once stable) or the broker fails.
	assignmentRetry = 250 * time.Millisecond
)

// errNotStable: the group is between generations; ask again.
var errNotStable = errors.New("the group is rebalancing")

// assignmentKey identifies the membership an answer is about.
type assignmentKey struct {
	cl         *kgo.Client
	member     string
	generation int32
}

var _ connector.Assigner = (*Source)(nil)

// Assigned implements connector.Assigner, for status: the partitions the
// coordinator assigned to this member in its current generation, each
// with the group's committed offset read then (-1 for none). Until the
// coordinator has answered for the current generation it returns the
// previous answer, which may still list partitions the rebalance gave to
// another member: what to show meanwhile, never what to write state for
// (AssignedNow).
func (s *Source) Assigned() map[connector.TopicPartition]int64 {
	s.watchAssignment(s.membership())
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.held)
}

var _ connector.CurrentAssigner = (*Source)(nil)

// AssignedNow implements connector.CurrentAssigner: the coordinator's
// answer about this member's current generation (client, member ID and
// generation all equal), or nil while there is none. A window stage
// idle-advances only partitions listed here: an earlier generation's
// answer can list a partition another member took in a later one and
// reads and commits now, and advancing it too closed that member's
// windows a second time (ci44's duplicates).
func (s *Source) AssignedNow() map[connector.TopicPartition]int64 {
	key := s.membership()
	s.watchAssignment(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if key.member == "" || s.heldKey != key {
		return nil
	}
	return maps.Clone(s.held)
}

// membership is the current client's group membership: the key of the
// coordinator's answer about it.
func (s *Source) membership() assignmentKey {
	var key assignmentKey
	if cl := s.client(); cl != nil {
		key.cl = cl
		key.member, key.generation = cl.GroupMetadata()
	}
	return key
}

// watchAssignment asks the coordinator again, without waiting for the
// answer, if the membership (key) changed since its last answer. A client
// that is not a group member (not joined yet, or expelled and rejoining)
// holds nothing.
func (s *Source) watchAssignment(key assignmentKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key.member == "" {
		s.held, s.heldKey = nil, key
		return
	}
	if key == s.heldKey || s.asking || time.Since(s.lastAsked) < assignmentRetry || s.closed {
		return
	}
	s.asking, s.lastAsked = true, time.Now()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, assignmentTimeout)
		defer cancel()
		held, err := describeAssignment(ctx, key)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.asking = false
		if err != nil {
			s.log.Debug("asking the group coordinator for this member's partitions", "err", err)
			return // asked again at the next poll or status after assignmentRetry
		}
		s.held, s.heldKey = held, key
		for tp := range s.hwms {
			if _, ok := held[tp]; !ok {
				delete(s.hwms, tp)
			}
		}
	}()
}

// describeAssignment asks the coordinator which partitions key's member
// holds, and the group's committed offsets for them.
func describeAssignment(ctx context.Context, key assignmentKey) (map[connector.TopicPartition]int64, error) {
	group, _ := key.cl.OptValue(kgo.ConsumerGroup).(string)
	adm := kadm.NewClient(key.cl) // borrows the client; closing it is the protocol's job
	groups, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, err
	}
	g, ok := groups[group]
	switch {
	case !ok:
		return nil, fmt.Errorf("group %s: not in the answer", group)
	case g.Err != nil:
		return nil, fmt.Errorf("group %s: %w", group, g.Err)
	case g.State != "Stable":
		return nil, fmt.Errorf("group %s is %s: %w", group, g.State, errNotStable)
	}
	held := map[connector.TopicPartition]int64{}
	for _, m := range g.Members {
		if m.MemberID != key.member {
			continue
		}
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			return nil, fmt.Errorf("group %s: member %s's assignment is not a consumer assignment", group, key.member)
		}
		for _, t := range a.Topics {
			for _, p := range t.Partitions {
				held[connector.TopicPartition{Topic: t.Topic, Partition: p}] = -1
			}
		}
	}
	if len(held) == 0 {
		return held, nil // expelled, or assigned nothing
	}
	offsets, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = offsets.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("group %s offsets: %w", group, err)
	}
	for tp := range held {
		if o, ok := offsets.Lookup(tp.Topic, tp.Partition); ok && o.Err == nil && o.At >= 0 {
			held[tp] = o.At
		}
	}
	return held, nil
}
