package kafka

import (
	"testing"

	"github.com/connectd/connectd/connector"
)

func TestOriginRoundTrip(t *testing.T) {
	for _, o := range []connector.Origin{
		{Topic: "orders", Partition: 3, Offset: 42},
		{Topic: "generator:a/b", Partition: 0, Offset: 0},
	} {
		got, err := ParseOrigin(o.String())
		if err != nil || got != o {
			t.Errorf("ParseOrigin(%q) = %v, %v; want %v", o.String(), got, err, o)
		}
	}
	for _, bad := range []string{"", "x", "a/1", "a/x/1", "a/1/y", "/1/2"} {
		if _, err := ParseOrigin(bad); err == nil {
			t.Errorf("ParseOrigin(%q) accepted", bad)
		}
	}
}

func TestToKgoHeadersAndTopic(t *testing.T) {
	r := &connector.Record{
		Key: []byte("k"), Value: []byte("v"), EventID: "id-1",
		Headers: []connector.Header{{Key: "a", Value: []byte("1")}, {Key: HeaderEventID, Value: []byte("stale")}},
		Origin:  connector.Origin{Topic: "in", Partition: 1, Offset: 7},
	}
	kr := ToKgo(r, "out")
	if kr.Topic != "out" {
		t.Fatalf("topic %q", kr.Topic)
	}
	got := map[string]string{}
	for _, h := range kr.Headers {
		if _, dup := got[h.Key]; dup {
			t.Fatalf("header %q twice", h.Key)
		}
		got[h.Key] = string(h.Value)
	}
	if got["a"] != "1" || got[HeaderEventID] != "id-1" || got[HeaderOrigin] != "in/1/7" {
		t.Fatalf("headers %v", got)
	}
	r.Topic = "routed"
	if ToKgo(r, "out").Topic != "routed" {
		t.Fatal("route ignored")
	}
}
