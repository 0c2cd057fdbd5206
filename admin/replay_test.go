package admin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/kappa"
)

// replayFake adds admin.Replays to the fake: it records the request and
// answers as told.
type replayFake struct {
	*fake
	def      string
	from     string
	force    bool
	promoted error
}

func (r *replayFake) Replay(_ context.Context, name string, def []byte, from string) (kappa.Info, error) {
	r.def, r.from = string(def), from
	return kappa.Info{Name: name + "-v2", Of: name, Version: 2, From: from, State: kappa.CatchingUp}, nil
}

func (r *replayFake) ReplayStatus(_ context.Context, name string) (kappa.Info, error) {
	if name != "orders-v2" {
		return kappa.Info{}, fmt.Errorf("%w: %s has no replay", admin.ErrNotFound, name)
	}
	return kappa.Info{Name: name, Of: "orders", State: kappa.CaughtUp, Lag: &kappa.Lag{Total: 3}}, nil
}

func (r *replayFake) Promote(_ context.Context, name string, force bool) (kappa.Info, error) {
	r.force = force
	return kappa.Info{Name: name, State: kappa.Promoted}, r.promoted
}

// TestReplayRoutes: the replay routes parse their requests, map the
// refusals to Connect's codes, and answer 501 on a server that cannot
// replay.
func TestReplayRoutes(t *testing.T) {
	f := newFake()
	f.add(parsed(t, "orders", `{"name": "orders", `+ordersConfig[1:]), nil, connector.Running, nil)
	expect(t, do(t, admin.New(f, nil).Handler(), "POST", "/connectors/orders/replay", ""), 501, "")

	rf := &replayFake{fake: f}
	h := admin.New(rf, nil).Handler()
	rec := do(t, h, "POST", "/connectors/orders/replay", `{"config": {"name": "orders"}, "from": "2026-12-04T10:00:00Z"}`)
	expect(t, rec, 201, "")
	if rf.def != `{"name": "orders"}` || rf.from != "2026-12-04T10:00:00Z" || rec.Header().Get("Location") != "/connectors/orders-v2" {
		t.Fatalf("replay got def %q from %q; Location %q", rf.def, rf.from, rec.Header().Get("Location"))
	}
	expect(t, do(t, h, "POST", "/connectors/orders/replay", ""), 201, "")
	if rf.def != "" || rf.from != "" {
		t.Fatalf("an empty body passed def %q from %q", rf.def, rf.from)
	}
	rec = do(t, h, "POST", "/connectors/orders/replay", `{"conifg": {}}`)
	expect(t, rec, 400, "")
	if !strings.Contains(rec.Body.String(), "conifg") {
		t.Fatalf("unknown member not named: %s", rec.Body)
	}

	expect(t, do(t, h, "GET", "/connectors/orders-v2/replay", ""), 200, "")
	rec = do(t, h, "GET", "/connectors/orders/replay", "")
	expect(t, rec, 404, `{"error_code": 404, "message": "connector not found: orders has no replay"}`)

	expect(t, do(t, h, "POST", "/connectors/orders-v2/promote?force=true", ""), 200, "")
	if !rf.force {
		t.Fatal("force=true not passed")
	}
	expect(t, do(t, h, "POST", "/connectors/orders-v2/promote?force=maybe", ""), 400, "")
	rf.promoted = fmt.Errorf("%w: orders-v2 is 5000 records behind", admin.ErrConflict)
	expect(t, do(t, h, "POST", "/connectors/orders-v2/promote", ""), 409, "")
}
