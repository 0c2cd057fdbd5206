package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/component"
	"github.com/connectd/connectd/config"
)

// badConfig has one problem per marked line; Validate must report every one
// of them at once, positioned.
const badConfig = `kafka:
  brokers: [localhost:9092]
connectors:
  - name: unknown-types
    source:
      type: nope
    transforms:
      - type: filter
        expr: 'value.a +'
    sink:
      type: nope2
  - name: missing-topics
    source:
      type: kafka
      group: g
    sink:
      type: kafka
  - name: good
    source: {type: kafka, topics: [in]}
    sink: {type: kafka, topic: out}
`

func TestValidateReportsEveryProblemPositioned(t *testing.T) {
	cfg, err := config.Parse("bad.yaml", []byte(badConfig))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	err = Validate(cfg)
	var ces config.Errors
	if !errors.As(err, &ces) {
		t.Fatalf("Validate error %v (%T), want config.Errors", err, err)
	}
	want := []struct {
		pos, contains string
	}{
		{"bad.yaml:6:7", `unknown source type "nope" (known: ` + strings.Join(component.SourceNames(), ", ") + ")"},
		{"bad.yaml:9:9", `transforms[0] (filter): expr: "value.a +" does not compile`},
		{"bad.yaml:11:7", `unknown sink type "nope2" (known: ` + strings.Join(component.SinkNames(), ", ") + ")"},
		{"bad.yaml:14:7", "kafka source: topics: at least one topic is required"},
		{"bad.yaml:17:7", "kafka sink: topic: an output topic is required"},
	}
	if len(ces) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(ces), len(want), err)
	}
	for i, w := range want {
		if i >= len(ces) {
			break
		}
		if got := ces[i].Pos.String(); got != w.pos || !strings.Contains(ces[i].Msg, w.contains) {
			t.Errorf("problem %d: %s: %s\nwant %s: ...%s...", i, got, ces[i].Msg, w.pos, w.contains)
		}
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.HasPrefix(line, "bad.yaml:") {
			continue
		}
		if strings.HasPrefix(line, " |") { // the expr compiler's caret lines
			continue
		}
		t.Errorf("unpositioned line %q", line)
	}
}

func TestDecodeOneConnectorAllProblems(t *testing.T) {
	cfg, err := config.Parse("bad.yaml", []byte(badConfig))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Decode(cfg.Connectors[0])
	if spec != nil {
		t.Errorf("Decode returned a spec with errors")
	}
	var ces config.Errors
	if !errors.As(err, &ces) || len(ces) != 3 {
		t.Fatalf("Decode error %v, want the 3 problems of the first connector", err)
	}
}

func TestDecodeGood(t *testing.T) {
	cfg, err := config.Parse("good.yaml", []byte(badConfig))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Decode(cfg.Connectors[2])
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if spec.KafkaSrc == nil || spec.Generator != nil {
		t.Fatalf("spec source: kafka %v generator %v", spec.KafkaSrc, spec.Generator)
	}
	// Validate filled the Kafka source's defaults.
	if spec.KafkaSrc.Group != "connectd-good" || spec.KafkaSrc.StartOffset != "earliest" || spec.KafkaSrc.SessionTimeout != 45*time.Second {
		t.Errorf("kafka source defaults %+v", *spec.KafkaSrc)
	}
	if spec.KafkaSink.Topic != "out" || spec.Processor == nil {
		t.Errorf("sink %+v processor %v", spec.KafkaSink, spec.Processor)
	}
}

func TestDecodeGenerator(t *testing.T) {
	cfg, err := config.Parse("gen.yaml", []byte(`kafka:
  brokers: [localhost:9092]
connectors:
  - name: gen
    source: {type: generator, count: 10}
    sink: {type: kafka, topic: out}
`))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Decode(cfg.Connectors[0])
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if spec.Generator == nil || spec.KafkaSrc != nil {
		t.Errorf("spec source: generator %v kafka %v", spec.Generator, spec.KafkaSrc)
	}
}

func TestNewProcessorWithInlineComponents(t *testing.T) {
	cc := config.Connector{
		Name:    "inline",
		EventID: config.EventID{From: "derived"},
		Transforms: []config.Component{
			config.NewComponent("set", map[string]any{"fields": map[string]any{"x": 1}}),
			config.NewComponent("nope", nil),
			config.NewComponent("filter", map[string]any{"expr": "1 +"}),
		},
	}
	_, err := NewProcessor(cc)
	var ces config.Errors
	if !errors.As(err, &ces) || len(ces) != 2 {
		t.Fatalf("NewProcessor error %v, want 2 problems (unknown type, bad expr)", err)
	}
	for _, e := range ces {
		if e.Pos.File != "<inline>" {
			t.Errorf("problem %q not positioned in <inline>", e)
		}
	}
	if !strings.Contains(err.Error(), `unknown transform type "nope"`) || !strings.Contains(err.Error(), "does not compile") {
		t.Errorf("problems %v", err)
	}
}
