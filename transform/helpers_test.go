package transform

import (
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/connectd/connectd/connector"
)

// yamlConfig stands in for config.Component.Decode: it strictly decodes a
// YAML snippet into the transform's config struct.
func yamlConfig(src string) func(any) error {
	return func(v any) error {
		return yaml.UnmarshalWithOptions([]byte(src), v, yaml.Strict())
	}
}

func mustBuild(t testing.TB, name, src string) Transform {
	t.Helper()
	tr, err := Build(name, yamlConfig(src))
	if err != nil {
		t.Fatalf("Build(%s, %q): %v", name, src, err)
	}
	return tr
}

func testRecord(value string) *connector.Record {
	return &connector.Record{
		Key:       []byte("k1"),
		Value:     []byte(value),
		Headers:   []connector.Header{{Key: "source", Value: []byte("web")}},
		Timestamp: time.UnixMilli(1700000000000),
		EventID:   "orders-1-42",
		Origin:    connector.Origin{Topic: "orders", Partition: 1, Offset: 42},
	}
}

// applyOne applies tr and requires at most one output; it returns nil when
// the record was dropped.
func applyOne(t *testing.T, tr Transform, in *connector.Record) (*connector.Record, error) {
	t.Helper()
	out, err := tr.Apply(in)
	if err != nil {
		return nil, err
	}
	switch len(out) {
	case 0:
		return nil, nil
	case 1:
		return out[0], nil
	default:
		t.Fatalf("got %d outputs, want at most 1", len(out))
		return nil, nil
	}
}
