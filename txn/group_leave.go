package txn

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveTimeout bounds the leave request a clean stop sends for a static
// group member; past it the partitions move after the session timeout, as
// after a crash.
const LeaveTimeout = 5 * time.Second

// closeGroupClient closes a consumer-group client for good: the connector
// is stopping (SIGTERM, stop, pause, delete), not recovering.
//
// A static member (kgo.InstanceID) does not leave its group when its client
// closes, so that a restart with the same instance ID takes its partitions
// back without a rebalance; that is what recovery after a failure and a
// crashed process want. A clean stop is different: nobody is coming back
// soon, and without a leave the member's partitions would stay unowned
// until its session times out. So after closing, the member leaves by its
// instance ID and member ID. If a newer incarnation with the same instance
// ID has replaced it meanwhile (two processes sharing an instance_id), the
// broker refuses the leave with FENCED_INSTANCE_ID and the newer one keeps
// its partitions.
//
// The leave goes through a second, short-lived client made of the first
// one's connection options (brokers, TLS, SASL, dialer), because a closed
// client sends nothing and an open one would keep heartbeating for the
// member being removed.
func closeGroupClient(cl *kgo.Client, log *slog.Logger) {
	group, _ := cl.OptValue(kgo.ConsumerGroup).(string)
	instance, static := staticInstance(cl)
	memberID, _ := cl.GroupMetadata()
	var inst *string
	if static {
		inst = &instance
	}
	if closeUnblockingJoin(cl, group, inst) {
		log.Info("left the consumer group while it was rebalancing", "group", group, "instance_id", instance)
		return
	}
	if group == "" || !static || memberID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), LeaveTimeout)
	defer cancel()
	if err := leaveStatic(ctx, connectionOptions(cl.Opts()), group, instance, memberID); err != nil {
		log.Warn("a static group member could not leave at stop: its partitions move after the session timeout",
			"group", group, "instance_id", instance, "err", err)
		return
	}
	log.Info("left the consumer group", "group", group, "instance_id", instance)
}

// staticInstance returns the client's group.instance.id, if it has one.
func staticInstance(cl *kgo.Client) (string, bool) {
	vs := cl.OptValues(kgo.InstanceID)
	if len(vs) != 2 {
		return "", false
	}
	id, _ := vs[0].(string)
	set, _ := vs[1].(bool)
	return id, set && id != ""
}

// connectionOptions keeps the options that say how to reach the cluster
// and drops every consumer, group and producer option, so a client built
// from them joins nothing and starts no transaction.
func connectionOptions(opts []kgo.Opt) []kgo.Opt {
	var out []kgo.Opt
	for _, o := range opts {
		switch o.(type) {
		case kgo.GroupOpt, kgo.ConsumerOpt, kgo.ProducerOpt:
			continue
		}
		out = append(out, o)
	}
	return out
}

// leaveStatic removes the static member (instance, memberID) from group.
func leaveStatic(ctx context.Context, opts []kgo.Opt, group, instance, memberID string) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return leaveGroup(ctx, cl, group, &instance, memberID)
}

// leaveGroup removes member memberID (static if instance is set) from
// group through cl, a client of no group.
func leaveGroup(ctx context.Context, cl *kgo.Client, group string, instance *string, memberID string) error {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = memberID
	m.InstanceID = instance
	m.Reason = kmsg.StringPtr("connectd: clean stop")
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for _, m := range resp.Members {
		if err := kerr.ErrorForCode(m.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownMemberID) {
				// Already out of the group (expelled, or replaced by a
				// restart): nothing is left to hand over.
				return nil
			}
			if errors.Is(err, kerr.FencedInstanceID) {
				return errors.New("another process with the same instance_id has replaced this member; it keeps the partitions")
			}
			return err
		}
	}
	return nil
}
