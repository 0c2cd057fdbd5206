package config

import "time"

// Cluster configures cluster mode: the members sharing an ID share their
// connector configurations through ConfigTopic (any member's admin API
// writes there, every member runs what it holds) and their task statuses
// through StatusTopic, so any member's admin API answers for the whole
// cluster. Each member's worker ID is its instance_id.
type Cluster struct {
	// ID names the cluster; the topics default from it.
	ID string `yaml:"id"`
	// ConfigTopic is the compacted one-partition topic of connector
	// configurations. Default "_connectd-<id>-configs".
	ConfigTopic string `yaml:"config_topic"`
	// StatusTopic is the compacted topic of task statuses. Default
	// "_connectd-<id>-status".
	StatusTopic string `yaml:"status_topic"`
	// StatusInterval is how often a member refreshes its statuses; one
	// not refreshed for 3 intervals reads as stale. Default 5s.
	StatusInterval Duration `yaml:"status_interval"`
}

// DefaultStatusInterval is Cluster.StatusInterval's default.
const DefaultStatusInterval = 5 * time.Second

func applyClusterDefaults(c *Cluster, set func(string) bool) {
	if c == nil {
		return
	}
	if !set("cluster.config_topic") {
		c.ConfigTopic = "_connectd-" + c.ID + "-configs"
	}
	if !set("cluster.status_topic") {
		c.StatusTopic = "_connectd-" + c.ID + "-status"
	}
	if !set("cluster.status_interval") {
		c.StatusInterval = Duration(DefaultStatusInterval)
	}
}

// cluster checks the cluster block: an ID usable in topic names, topic
// names Kafka accepts, a positive interval, and an explicit instance_id
// (the worker ID other members show; a host name can repeat across
// containers).
func (v *validator) cluster(c *Config, top Position) {
	cl := c.Cluster
	if cl == nil {
		return
	}
	at := v.keyAt("cluster", top)
	switch {
	case cl.ID == "":
		v.add(at, "cluster.id is required: it names the cluster and its topics")
	case !connectorNameRE.MatchString(cl.ID):
		v.add(v.at("cluster.id", at), "cluster.id %q: use letters, digits, '.', '_' and '-' only (it is part of topic names)", cl.ID)
	}
	for _, t := range []struct{ key, topic string }{{"config_topic", cl.ConfigTopic}, {"status_topic", cl.StatusTopic}} {
		if t.topic != "" && (len(t.topic) > 249 || !connectorNameRE.MatchString(t.topic)) {
			v.add(v.at("cluster."+t.key, at), "cluster.%s %q is not a valid Kafka topic name", t.key, t.topic)
		}
	}
	if cl.ConfigTopic != "" && cl.ConfigTopic == cl.StatusTopic {
		v.add(v.at("cluster.status_topic", at), "cluster.status_topic must differ from cluster.config_topic")
	}
	if cl.StatusInterval <= 0 && v.ok("cluster.status_interval") {
		v.add(v.at("cluster.status_interval", at), "cluster.status_interval must be positive")
	}
	if len(c.Kafka.Brokers) == 0 {
		v.add(at, "cluster mode needs kafka.brokers: the members coordinate through one Kafka cluster, not an embedded broker")
	}
	if c.Admin.StateFile != "" {
		v.add(v.at("admin.state_file", at), "admin.state_file is not used in cluster mode: the config topic (cluster.config_topic) keeps what the admin API changes, for every member")
	}
	if _, set := v.spans["instance_id"]; !set {
		v.add(at, "cluster mode needs an explicit instance_id: it is this member's worker ID in every member's status answers")
	}
}
