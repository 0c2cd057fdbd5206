package txn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/connector"
)

// instanceProbeTimeout bounds the heartbeat that asks the coordinator
// whether this member was replaced; it runs only after a fenced commit.
const instanceProbeTimeout = 5 * time.Second

// explainFence tells a fence caused by another live process with the same
// instance_id from an ordinary one. When two processes share a
// group.instance.id, each join replaces the other member at the broker,
// and the replaced one learns it from its next heartbeat, up to a
// heartbeat interval later. A sink-checkpointed protocol usually learns
// it sooner, from the claim epochs its rival raised, and then the abort
// would say only "fenced" and the conflict would never reach the status.
// So after a fenced commit the member asks the coordinator itself: a
// heartbeat with its own member ID and instance ID answers
// FENCED_INSTANCE_ID exactly when another member took the instance ID.
// Any other answer (or no answer) leaves err as it is.
func explainFence(ctx context.Context, cl *kgo.Client, group string, err error) error {
	if cl == nil || connector.KindOf(err) != connector.Fenced || errors.Is(err, connector.ErrInstanceIDConflict) {
		return err
	}
	instance, ok := staticInstance(cl)
	if !ok {
		return err
	}
	memberID, generation := cl.GroupMetadata()
	if memberID == "" || generation < 0 {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, instanceProbeTimeout)
	defer cancel()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group = group
	req.MemberID = memberID
	req.Generation = generation
	req.InstanceID = &instance
	resp, rerr := req.RequestWith(ctx, cl)
	if rerr != nil || !errors.Is(kerr.ErrorForCode(resp.ErrorCode), kerr.FencedInstanceID) {
		return err
	}
	return connector.NewCommitError(connector.Fenced, "commit",
		fmt.Errorf("%w: another live process joined the group with this task's instance ID %q; "+
			"every process needs its own instance_id (the claim epochs keep the output exactly-once meanwhile): %v",
			connector.ErrInstanceIDConflict, instance, err))
}
