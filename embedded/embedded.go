// Package embedded runs franz-go's kfake broker inside the daemon, so
// `make run` works on a machine with nothing else installed. It speaks the
// Kafka protocol, transactions included, and persists to a data directory;
// production deployments point connectd at real Kafka brokers instead.
package embedded

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/connectd/connectd/config"
)

// Start starts a one-broker cluster listening on cfg.Listen, with topics
// auto-created with cfg.Partitions partitions, persisting to cfg.DataDir if
// set. The caller closes it.
func Start(cfg config.Embedded, extra ...kfake.Opt) (*kfake.Cluster, error) {
	listen := cfg.Listen
	if listen == "" {
		listen = config.DefaultEmbeddedListen
	}
	partitions := cfg.Partitions
	if partitions <= 0 {
		partitions = config.DefaultEmbeddedPartitions
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(partitions)),
		// kfake binds 127.0.0.1 on the port it is given; ListenFn makes
		// the configured address (host included) the one we bind.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, listen)
		}),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	c, err := kfake.NewCluster(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker on %s: %w", listen, err)
	}
	return c, nil
}
