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

// clusterMember is a daemon's part in its cluster: the config topic it
// runs the connectors of (daemon.Daemon.Configs), and the status topic,
// where it publishes its tasks every status_interval and removes them on a
// clean stop, and from which the admin API reads every member's.
type clusterMember struct {
	configs *cluster.ConfigLog
	log     *cluster.StatusLog
	cancel  context.CancelFunc
	done    chan struct{}
}

// openCluster opens the config and status topics of cfg.Cluster (nil
// without cluster mode), having read the config topic to its end. The
// worker ID is the instance_id (validation requires one).
func openCluster(ctx context.Context, cfg *config.Config, opts []kgo.Opt, log *slog.Logger) (*clusterMember, error) {
	if cfg.Cluster == nil {
		return nil, nil
	}
	brokers, log := daemon.SplitBrokers(cfg.Kafka.Brokers), log.With("cluster", cfg.Cluster.ID)
	configs, err := cluster.Open(ctx, brokers, cfg.Cluster.ConfigTopic, opts, log)
	if err != nil {
		return nil, err
	}
	sl, err := cluster.OpenStatus(ctx, brokers, cfg.Cluster.StatusTopic, cfg.InstanceID, cfg.Cluster.StatusInterval.D(), opts, log)
	if err != nil {
		configs.Close()
		return nil, err
	}
	return &clusterMember{configs: configs, log: sl}, nil
}

// start publishes d's tasks until stop.
func (c *clusterMember) start(d *daemon.Daemon) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		c.log.Run(ctx, func() []cluster.TaskStatus { return taskStatuses(d) })
	}()
}

// stop removes this member's statuses (a clean stop) and closes both
// topics; the daemon has stopped following the config topic by then.
func (c *clusterMember) stop() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	c.log.Close()
	c.configs.Close()
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
