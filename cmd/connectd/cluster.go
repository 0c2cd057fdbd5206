package main

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/admin"
	"github.com/connectd/connectd/cluster"
	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/daemon"
)

// clusterStatus is a cluster member's part in the status topic: it
// publishes this daemon's tasks every status_interval and removes them on
// a clean stop; the admin API reads every member's from it.
type clusterStatus struct {
	log    *cluster.StatusLog
	cancel context.CancelFunc
	done   chan struct{}
}

// openClusterStatus opens the status topic of cfg.Cluster (nil without
// cluster mode). The worker ID is the instance_id (validation requires one).
func openClusterStatus(ctx context.Context, cfg *config.Config, opts []kgo.Opt, log *slog.Logger) (*clusterStatus, error) {
	if cfg.Cluster == nil {
		return nil, nil
	}
	sl, err := cluster.OpenStatus(ctx, daemon.SplitBrokers(cfg.Kafka.Brokers), cfg.Cluster.StatusTopic, cfg.InstanceID,
		cfg.Cluster.StatusInterval.D(), opts, log.With("cluster", cfg.Cluster.ID))
	if err != nil {
		return nil, err
	}
	return &clusterStatus{log: sl}, nil
}

// start publishes d's tasks until stop.
func (c *clusterStatus) start(d *daemon.Daemon) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		c.log.Run(ctx, func() []cluster.TaskStatus { return taskStatuses(d) })
	}()
}

// stop removes this member's statuses (a clean stop) and closes the topic.
func (c *clusterStatus) stop() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	c.log.Close()
}

// taskStatuses are d's connectors' tasks as the status topic holds them,
// traces masked (the topic is readable by every member's operators).
func taskStatuses(d *daemon.Daemon) []cluster.TaskStatus {
	var out []cluster.TaskStatus
	for _, name := range d.Names() {
		st, ok := d.Status(name)
		if !ok {
			continue
		}
		if len(st.Tasks) == 0 {
			out = append(out, cluster.TaskStatus{Connector: name, Task: 0, State: string(st.State), Trace: trace(st.State, st.Error)})
			continue
		}
		for _, ts := range st.Tasks {
			out = append(out, cluster.TaskStatus{Connector: name, Task: ts.ID, State: string(ts.State), Trace: trace(ts.State, ts.Error)})
		}
	}
	return out
}

func trace(state connector.State, err string) string {
	if state != connector.Failed {
		return ""
	}
	return admin.MaskTrace(err)
}
