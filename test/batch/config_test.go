package batch_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/pipeline"
	"github.com/connectd/connectd/test/testenv"
)

// The connectors under test: a stateless one (a set transform) and a
// windowed one, each into Kafka, PostgreSQL and Redis, all exactly_once.
const (
	copyKind = "copy"
	winKind  = "win"
)

// connectorDef is one connector of both configs.
type connectorDef struct{ kind, sink string }

func (c connectorDef) name() string { return c.kind + "-" + c.sink }

var connectors = []connectorDef{
	{copyKind, "kafka"}, {copyKind, "postgres"}, {copyKind, "redis"},
	{winKind, "kafka"}, {winKind, "postgres"}, {winKind, "redis"},
}

// services is what both runs share: the input topic and the services the
// sinks write to.
type services struct {
	brokers     []string
	input       string
	eventBase   int64  // eventTimeBase
	dsn         string // a database of the test's own
	redisAddr   string
	redisPrefix string // the test's own key prefix
}

// side is one run's half of the test: its own instance_id, consumer
// groups and outputs (Kafka topics, PostgreSQL tables, Redis key
// prefixes), the same connector definitions.
type side struct {
	label    string // "stream" or "batch"
	instance string
	groups   map[string]string // by connector name
	topics   map[string]string // Kafka sinks: output topic
	tables   map[string]string // PostgreSQL sinks: table
	prefixes map[string]string // Redis sinks: key_prefix
	cfgPath  string
	specs    map[string]*pipeline.Spec
}

// newSide names side label's groups and outputs (topics are created
// here, deleted when the test ends with the state topics connectd creates
// for the groups) and writes its config into dir.
func newSide(t *testing.T, svc services, label, dir string) *side {
	t.Helper()
	s := &side{label: label, instance: testenv.UniqueName(t, label, "-", 60),
		groups: map[string]string{}, topics: map[string]string{}, tables: map[string]string{}, prefixes: map[string]string{}}
	base := testenv.UniqueName(t, "g-"+label, "-", 150)
	outs := testenv.KafkaTopics(t, svc.brokers, 2, partitions)
	for _, c := range connectors {
		n := c.name()
		s.groups[n] = base + "-" + n
		switch c.sink {
		case "kafka":
			s.topics[n] = outs[0]
			outs = outs[1:]
		case "postgres":
			s.tables[n] = "public." + label + "_" + c.kind
		case "redis":
			s.prefixes[n] = svc.redisPrefix + label + "-" + c.kind + ":"
		}
	}
	deleteTopicsWithPrefix(t, svc.brokers, base)
	s.cfgPath = filepath.Join(dir, label+".yaml")
	yaml := strings.ReplaceAll(s.yaml(svc), "\t", "  ")
	if err := os.WriteFile(s.cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s config %s:\n%s", label, s.cfgPath, yaml)
	cfg, err := config.Load(s.cfgPath)
	if err != nil {
		t.Fatalf("%s config: %v", label, err)
	}
	s.specs = map[string]*pipeline.Spec{}
	for _, cc := range cfg.Connectors {
		if s.specs[cc.Name], err = pipeline.Decode(cc); err != nil {
			t.Fatalf("%s config, connector %s: %v", label, cc.Name, err)
		}
	}
	return s
}

// yaml is the side's config: the connectors of connectors, with what
// differs between the sides (instance, groups, outputs) filled in.
func (s *side) yaml(svc services) string {
	quoted := make([]string, len(svc.brokers))
	for i, b := range svc.brokers {
		quoted[i] = fmt.Sprintf("%q", b)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "instance_id: ${%s:%s}\nadmin:\n\tlisten: 127.0.0.1:0\nkafka:\n\tbrokers: [%s]\nconnectors:\n",
		testenv.InstanceIDEnv, s.instance, strings.Join(quoted, ", "))
	for _, c := range connectors {
		n := c.name()
		fmt.Fprintf(&b, "\t- name: %s\n\t\tguarantee: exactly_once\n\t\tshutdown_timeout: 10s\n", n)
		fmt.Fprintf(&b, "\t\tsource: {type: kafka, topics: [%s], group: %s, session_timeout: 10s}\n", svc.input, s.groups[n])
		b.WriteString("\t\ttransforms:\n")
		if c.kind == copyKind {
			b.WriteString("\t\t\t- type: set\n\t\t\t\tfields: {copied: true}\n")
		} else {
			// Tumbling windows of event time eventBase + value.i*tickMs
			// per record key (the input is partitioned by it), as in
			// configs/orders-per-minute.yaml without idle_timeout: an
			// idle advance depends on the wall clock, and the input has
			// no late record, so the results depend on the input alone.
			fmt.Fprintf(&b, "\t\t\t- type: window\n\t\t\t\ttime: %d + value.i * %d\n", svc.eventBase, tickMs)
			fmt.Fprintf(&b, "\t\t\t\twindow: {type: tumbling, size: %dms}\n", windowMs)
			b.WriteString("\t\t\t\twatermark: {max_out_of_orderness: 2s}\n\t\t\t\tlate: drop\n")
			b.WriteString("\t\t\t\taggregate:\n\t\t\t\t\torders: count()\n\t\t\t\t\trevenue: sum(value.amount)\n" +
				"\t\t\t\t\tbiggest: max(value.amount)\n\t\t\t\t\tavg_amount: avg(value.amount)\n")
		}
		b.WriteString("\t\tsink:\n")
		switch c.sink {
		case "kafka":
			fmt.Fprintf(&b, "\t\t\ttype: kafka\n\t\t\ttopic: %s\n", s.topics[n])
		case "postgres":
			// value_text keeps the value's bytes (jsonb would
			// normalise them), so all three sinks compare bytes.
			fmt.Fprintf(&b, "\t\t\ttype: postgres\n\t\t\tdsn: %q\n\t\t\ttable: %s\n", svc.dsn, s.tables[n])
			b.WriteString("\t\t\tauto_create: true\n\t\t\ttest_apply_counter: true\n" +
				"\t\t\tcolumns:\n\t\t\t\trkey: key\n\t\t\t\trvalue: value_text\n")
		case "redis":
			// The key holds the record key and the event ID (neither
			// has a colon); verify reads the audit log.
			fmt.Fprintf(&b, "\t\t\ttype: redis\n\t\t\taddr: %q\n\t\t\tkey_prefix: %q\n", svc.redisAddr, s.prefixes[n])
			fmt.Fprintf(&b, "\t\t\tkey: %q\n\t\t\taudit_log: true\n\t\t\ttest_apply_counter: true\n", redisKeyTemplate)
		}
	}
	return b.String()
}

// deleteTopicsWithPrefix deletes, when the test ends, the topics whose
// names start with prefix: the state topics (<group>-state) connectd
// creates for windowed connectors into Kafka.
func deleteTopicsWithPrefix(t *testing.T, brokers []string, prefix string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Logf("delete topics %s*: %v", prefix, err)
			return
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		listed, err := adm.ListTopics(ctx)
		if err != nil {
			t.Logf("delete topics %s*: %v", prefix, err)
			return
		}
		var names []string
		for _, name := range listed.Names() {
			if strings.HasPrefix(name, prefix) {
				names = append(names, name)
			}
		}
		if len(names) > 0 {
			if _, err := adm.DeleteTopics(ctx, names...); err != nil {
				t.Logf("delete topics %v: %v", names, err)
			}
		}
	})
}
