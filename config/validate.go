package config

import (
	"fmt"
	"regexp"
	"time"
)

// connectorNameRE keeps names safe to embed in Kafka transactional IDs,
// consumer group IDs, topic names and URL paths of the admin API.
var connectorNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// transactionSlack is how much longer than commit.interval a transaction
// must be allowed to stay open: room for writing the batch and the commit
// round trips, even on a slow broker.
const transactionSlack = 5 * time.Second

// validator checks a decoded config, pointing each problem at the value that
// causes it, or at the enclosing section when the value is missing.
type validator struct {
	file   string
	spans  map[string]span
	failed map[string]bool
	errs   *Errors
}

// at is where path's value is written, else fallback.
func (v *validator) at(path string, fallback Position) Position {
	if s, ok := v.spans[path]; ok {
		return s.Value
	}
	return fallback
}

// keyAt is where path's key is written, else fallback.
func (v *validator) keyAt(path string, fallback Position) Position {
	if s, ok := v.spans[path]; ok {
		return s.Key
	}
	return fallback
}

// ok reports whether path decoded; a path that failed was already reported.
func (v *validator) ok(path string) bool { return !v.failed[path] }

func (v *validator) add(pos Position, format string, args ...any) {
	v.errs.add(pos, format, args...)
}

func connectorPath(i int) string { return fmt.Sprintf("connectors[%d]", i) }

func (v *validator) config(c *Config) {
	top := Position{File: v.file, Line: 1, Column: 1}
	v.kafka(c.Kafka, top)
	v.admin(c.Admin, top)
	v.cluster(c, top)
	// A cluster member may start with none: it runs those of the config
	// topic, written through any member's admin API.
	if len(c.Connectors) == 0 && v.ok("connectors") && c.Cluster == nil {
		v.add(v.keyAt("connectors", top), "no connectors: define at least one under connectors")
	}
	firstByName := map[string]Position{}
	for i := range c.Connectors {
		cn := &c.Connectors[i]
		p := connectorPath(i)
		v.connector(cn, p)
		if cn.Name == "" {
			continue
		}
		if first, dup := firstByName[cn.Name]; dup {
			v.add(v.at(p+".name", cn.Pos), "duplicate connector name %q (first defined at line %d): names must be unique because they key checkpoints and transactional IDs", cn.Name, first.Line)
			continue
		}
		firstByName[cn.Name] = v.at(p+".name", cn.Pos)
	}
}

func (v *validator) kafka(k Kafka, top Position) {
	at := v.keyAt("kafka", top)
	switch {
	case !v.ok("kafka") || !v.ok("kafka.brokers") || !v.ok("kafka.embedded"):
	case len(k.Brokers) > 0 && k.Embedded != nil:
		v.add(v.keyAt("kafka.embedded", at), "kafka: set either brokers or embedded, not both")
	case len(k.Brokers) == 0 && k.Embedded == nil:
		v.add(at, "kafka: set either brokers (an external cluster) or embedded (the in-process broker)")
	}
	for i, b := range k.Brokers {
		if b == "" {
			p := fmt.Sprintf("kafka.brokers[%d]", i)
			v.add(v.at(p, at), "%s: broker address is empty", p)
		}
	}
	if e := k.Embedded; e != nil && e.Partitions <= 0 && v.ok("kafka.embedded.partitions") {
		v.add(v.at("kafka.embedded.partitions", at), "kafka.embedded.partitions must be > 0, got %d", e.Partitions)
	}
	v.kafkaSecurity(k, at)
}

func (v *validator) connector(c *Connector, p string) {
	switch {
	case !v.ok(p + ".name"):
	case c.Name == "":
		v.add(c.Pos, "%s: name is required", p)
	case !connectorNameRE.MatchString(c.Name):
		v.add(v.at(p+".name", c.Pos), "connector name %q may contain only letters, digits, '.', '_' and '-'", c.Name)
	}
	if v.ok(p+".guarantee") && c.Guarantee != ExactlyOnce && c.Guarantee != AtLeastOnce {
		v.add(v.at(p+".guarantee", c.Pos), "%s.guarantee must be %s or %s, got %q", p, ExactlyOnce, AtLeastOnce, c.Guarantee)
	}
	if v.ok(p+".commit.interval") && c.CommitInterval <= 0 {
		v.add(v.at(p+".commit.interval", c.Pos), "%s.commit.interval must be > 0, got %s", p, c.CommitInterval)
	}
	if v.ok(p+".batch.max.records") && c.BatchMaxRecords <= 0 {
		v.add(v.at(p+".batch.max.records", c.Pos), "%s.batch.max.records must be > 0, got %d", p, c.BatchMaxRecords)
	}
	if v.ok(p + ".tasks") {
		switch {
		case c.Tasks < 1 || c.Tasks > MaxTasks:
			v.add(v.at(p+".tasks", c.Pos), "%s.tasks must be between 1 and %d, got %d", p, MaxTasks, c.Tasks)
		case c.Tasks > 1 && c.Source.Type != "" && c.Source.Type != "kafka":
			v.add(v.at(p+".tasks", c.Pos), "%s.tasks: only a kafka source can be split into tasks (its consumer group shares the partitions); a %s source runs one task", p, c.Source.Type)
		}
	}
	if v.ok(p+".shutdown_timeout") && c.ShutdownTimeout < 0 {
		v.add(v.at(p+".shutdown_timeout", c.Pos), "%s.shutdown_timeout must not be negative, got %s", p, c.ShutdownTimeout)
	}
	if v.ok(p+".transaction.timeout") && v.ok(p+".commit.interval") && c.CommitInterval > 0 &&
		c.TransactionTimeout.D() <= c.CommitInterval.D()+transactionSlack {
		at := v.at(p+".transaction.timeout", v.at(p+".commit.interval", c.Pos))
		v.add(at, "%s.transaction.timeout (%s) must be greater than commit.interval (%s) + %s: the broker aborts a transaction that stays open longer than transaction.timeout, so a batch must commit well within it",
			p, c.TransactionTimeout, c.CommitInterval, transactionSlack)
	}
	v.eventID(c, p)
	v.errorsTolerance(c, p)
	v.bounded(c, p)
	v.component(c.Source, p+".source", "source", c.Pos)
	for i, t := range c.Transforms {
		v.component(t, fmt.Sprintf("%s.transforms[%d]", p, i), "transform", c.Pos)
	}
	switch {
	case len(c.Sinks) == 0:
		v.component(c.Sink, p+".sink", "sink", c.Pos)
	case c.Sink.node != nil:
		v.add(v.keyAt(p+".sinks", c.Pos), "%s: give sink or sinks, not both", p)
	default:
		for i, s := range c.Sinks {
			v.component(s, fmt.Sprintf("%s.sinks[%d]", p, i), "sink", c.Pos)
		}
	}
}

func (v *validator) eventID(c *Connector, p string) {
	from := p + ".event_id.from"
	if !v.ok(from) {
		return
	}
	switch c.EventID.From {
	case "header", "key", "derived":
	case "json":
		if c.EventID.Field == "" && v.ok(p+".event_id.field") {
			v.add(v.keyAt(from, c.Pos), "%s.event_id: from: json needs field (the dot-separated JSON path of the ID)", p)
		}
	default:
		v.add(v.at(from, c.Pos), "%s.event_id.from must be header, json, key or derived, got %q", p, c.EventID.From)
	}
}

func (v *validator) errorsTolerance(c *Connector, p string) {
	tol := p + ".errors.tolerance"
	if !v.ok(tol) {
		return
	}
	switch c.ErrorsTolerance {
	case "none":
	case "all":
		if (c.DeadLetterQueue == nil || c.DeadLetterQueue.Topic == "") && v.ok(p+".dead_letter_queue") && v.ok(p+".dead_letter_queue.topic") {
			v.add(v.at(tol, c.Pos), "%s: errors.tolerance: all needs dead_letter_queue.topic, where records that fail go (dropping them would lose events silently)", p)
		}
	default:
		v.add(v.at(tol, c.Pos), "%s.errors.tolerance must be none or all, got %q", p, c.ErrorsTolerance)
	}
}

// component checks what every source, transform and sink needs at load time:
// a type. The rest is checked by the implementation through Decode.
func (v *validator) component(c Component, p, role string, connectorPos Position) {
	if !v.ok(p) || !v.ok(p+".type") {
		return
	}
	if c.node == nil {
		v.add(connectorPos, "%s: %s is required", p, role)
		return
	}
	if c.Type == "" {
		v.add(v.at(p+".type", c.Pos), "%s: type is required (which %s implementation to use)", p, role)
	}
}
