package redis

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/connector"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string // prefix of the error; "" for valid
	}{
		{"minimal", Config{Addr: "127.0.0.1:6379"}, ""},
		{"url", Config{URL: "redis://:pw@127.0.0.1:6379/2"}, ""},
		{"no address", Config{}, "addr:"},
		{"both", Config{Addr: "a:1", URL: "redis://a:1"}, "url:"},
		{"addr without port", Config{Addr: "localhost"}, "addr:"},
		{"bad url", Config{URL: "http://x"}, "url:"},
		{"negative db", Config{Addr: "a:1", DB: -1}, "db:"},
		{"unknown placeholder", Config{Addr: "a:1", Key: "x:{nope}"}, "key:"},
		{"unclosed brace", Config{Addr: "a:1", Key: "x:{key"}, "key:"},
		{"stray brace", Config{Addr: "a:1", Key: "x}"}, "key:"},
		{"empty json path", Config{Addr: "a:1", Key: "{json:}"}, "key:"},
		{"json path with empty segment", Config{Addr: "a:1", Key: "{json:a..b}"}, "key:"},
		{"escaped braces", Config{Addr: "a:1", Key: "{{user}}:{key}"}, ""},
		{"bad structure", Config{Addr: "a:1", Structure: "list"}, "structure:"},
		{"bad value", Config{Addr: "a:1", Value: "whole"}, "value:"},
		{"fields need hash or stream", Config{Addr: "a:1", Value: "fields"}, "value:"},
		{"fields in a hash", Config{Addr: "a:1", Value: "fields", Structure: "hash"}, ""},
		{"json value", Config{Addr: "a:1", Value: "json:order.total"}, ""},
		{"negative ttl", Config{Addr: "a:1", TTL: -time.Second}, "ttl:"},
		{"sub-millisecond ttl", Config{Addr: "a:1", TTL: time.Microsecond}, "ttl:"},
		{"offsets key without group", Config{Addr: "a:1", OffsetsKey: "offsets"}, "offsets_key:"},
		{"negative batch size", Config{Addr: "a:1", BatchSize: -1}, "batch_size:"},
		{"negative timeout", Config{Addr: "a:1", Timeout: -1}, "timeout:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
				t.Fatalf("want an error starting %q, got %v", tc.err, err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Addr: "127.0.0.1:6379", KeyPrefix: "p:"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Key != DefaultKey || c.Structure != StructureString || c.Value != ValueWhole ||
		c.OffsetsKey != DefaultOffsetsKey || c.DLQStream != DefaultDLQStream ||
		c.BatchSize != DefaultBatchSize || c.Timeout != DefaultTimeout {
		t.Fatalf("defaults not applied: %+v", c)
	}
	k := c.keys()
	if got := k.offsetsKey("g1"); got != "p:connectd:offsets:g1" {
		t.Errorf("offsets key %q", got)
	}
	if k.dlq != "p:connectd:dlq" || k.audit != "p:connectd:applied-log" || k.counter != "p:connectd:applied:" {
		t.Errorf("sink keys %+v", k)
	}
	o, err := c.options()
	if err != nil || o.MaxRetries != -1 || o.Addr != c.Addr {
		t.Fatalf("options %+v, %v", o, err)
	}
	u := Config{URL: "redis://:secret@127.0.0.1:6380/3", Password: "other", DB: 4}
	if err := u.Validate(); err != nil {
		t.Fatal(err)
	}
	if o, _ := u.options(); o.Addr != "127.0.0.1:6380" || o.Password != "other" || o.DB != 4 {
		t.Fatalf("url options %+v", o)
	}
}

func TestKeyTemplateRender(t *testing.T) {
	rec := &connector.Record{
		Key: []byte("k1"), Value: []byte(`{"user":{"id":42,"name":"ann"},"ok":true,"tags":[1]}`),
		EventID: "e-1", Origin: connector.Origin{Topic: "orders", Partition: 3, Offset: 17},
	}
	for _, tc := range []struct {
		tmpl, want, err string
	}{
		{"{event_id}", "e-1", ""},
		{"ev:{event_id}:{key}", "ev:e-1:k1", ""},
		{"{topic}/{partition}/{offset}", "orders/3/17", ""},
		{"user:{json:user.id}", "user:42", ""},
		{"name:{json:user.name}:{json:ok}", "name:ann:true", ""},
		{"{{tag}}:{key}", "{tag}:k1", ""},
		{"{json:user}", "", "key: {json:user} is an object, not a string, number or boolean"},
		{"{json:tags}", "", "key: {json:tags} is an array, not a string, number or boolean"},
		{"{json:tags.0}", "1", ""},
		{"{json:missing}", "", "key: {json:missing} missing"},
		{"{json:user.id.x}", "", `key: {json:user.id.x} missing: "user.id" is not an object`},
	} {
		kt, err := parseKeyTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		got, err := kt.render(rec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: want error containing %q, got %q, %v", tc.tmpl, tc.err, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
	kt, _ := parseKeyTemplate("{key}")
	if _, err := kt.render(&connector.Record{EventID: "x"}); err == nil {
		t.Error("{key} of a record without key: want an error")
	}
	kt, _ = parseKeyTemplate("{json:id}")
	if _, err := kt.render(&connector.Record{Value: []byte("not json")}); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("json of a non-JSON value: %v", err)
	}
}

func TestValueMapping(t *testing.T) {
	rec := &connector.Record{Value: []byte(`{"b":"x","a":1.50,"o":{"k":[1,2]},"n":null}`)}
	m, _ := parseValueMapping("fields")
	got, n, err := m.appendFields(nil, rec)
	if err != nil || n != 8 {
		t.Fatalf("fields: %v, %d, %v", got, n, err)
	}
	want := []string{"b", "x", "a", "1.50", "o", `{"k":[1,2]}`, "n", "null"}
	for i, w := range want {
		if s := asString(got[i]); s != w {
			t.Errorf("fields[%d] = %q, want %q (document order, strings unquoted, numbers verbatim)", i, s, w)
		}
	}
	for _, bad := range []string{`[1]`, `{}`, `"s"`, `{"a":`} {
		if _, _, err := m.appendFields(nil, &connector.Record{Value: []byte(bad)}); err == nil {
			t.Errorf("fields of %s: want an error", bad)
		}
	}
	m, _ = parseValueMapping("json:o.k")
	if v, err := m.single(rec); err != nil || string(v) != "[1,2]" {
		t.Errorf("json:o.k = %q, %v", v, err)
	}
	m, _ = parseValueMapping("json:b")
	if v, err := m.single(rec); err != nil || string(v) != "x" {
		t.Errorf("json:b = %q, %v", v, err)
	}
	m, _ = parseValueMapping("value")
	if v, _ := m.single(rec); string(v) != string(rec.Value) {
		t.Errorf("value = %q", v)
	}
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func testPlanner(t testing.TB, c Config, dlqTopic string) *planner {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return newPlanner(&c, dlqTopic)
}

func TestCommitArgsLayout(t *testing.T) {
	p := testPlanner(t, Config{Addr: "a:1", KeyPrefix: "p:", Structure: "hash", Value: "fields",
		TTL: 2 * time.Second, AuditLog: true, TestApplyCounter: true}, "dlq")
	recs := []*connector.Record{
		{EventID: "e1", Value: []byte(`{"a":"1","b":2}`), Origin: connector.Origin{Topic: "t", Partition: 0, Offset: 5}},
		{EventID: "e2", Value: []byte(`x`), Topic: "dlq", Origin: connector.Origin{Topic: "t", Partition: 1, Offset: 9},
			Headers: []connector.Header{{Key: "__connect.errors.stage", Value: []byte("transform")}}},
	}
	ops := make([]op, len(recs))
	for i, r := range recs {
		o, err := p.op(r, "p:connectd:offsets:g")
		if err != nil {
			t.Fatal(err)
		}
		ops[i] = o
	}
	t0, t1 := connector.TopicPartition{Topic: "t", Partition: 0}, connector.TopicPartition{Topic: "t", Partition: 1}
	keys, args, err := p.commitArgs("p:connectd:offsets:g",
		map[connector.TopicPartition]int64{t0: 3, t1: 3},
		connector.Checkpoint{t0: 5}, connector.Checkpoint{t0: 6, t1: 10}, ops, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"p:connectd:offsets:g", "p:connectd:dlq", "p:connectd:applied-log", "p:e1", "p:connectd:dlq",
		"p:connectd:applied:e1", "p:connectd:applied:e2"}
	if strings.Join(keys, " ") != strings.Join(wantKeys, " ") {
		t.Errorf("keys %q\nwant %q", keys, wantKeys)
	}
	var got []string
	for _, a := range args {
		if b, ok := a.([]byte); ok {
			a = string(b)
		}
		got = append(got, fmt.Sprint(a))
	}
	want := "2 2 2000 1 1 0 " +
		"t/0 3:5 3:6 t/1 3:-1 3:10 " +
		"h hash:e1 4 a 1 b 2 " +
		"d dlq:e2 10 event_id e2 origin t/1/9 key  value x __connect.errors.stage transform"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("args\n%s\nwant\n%s", s, want)
	}
	_, _, err = p.commitArgs("k", map[connector.TopicPartition]int64{}, nil, connector.Checkpoint{t0: 1}, nil, nil)
	if connector.KindOf(err) != connector.Fatal {
		t.Errorf("missing generation: %v", err)
	}
}

func TestRecordErrors(t *testing.T) {
	bad := &connector.Record{EventID: "e9", Value: []byte(`{}`), Origin: connector.Origin{Topic: "t", Partition: 2, Offset: 8}}
	// errors.tolerance none: Fatal, naming the record.
	p := testPlanner(t, Config{Addr: "a:1", Value: "json:amount"}, "")
	_, err := p.op(bad, "")
	var re *connector.RecordError
	if connector.KindOf(err) != connector.Fatal || !errors.As(err, &re) || re.Origin != bad.Origin {
		t.Fatalf("want a Fatal record error naming t/2/8, got %v", err)
	}
	// errors.tolerance all: dead-lettered with the sink's error.
	p = testPlanner(t, Config{Addr: "a:1", Value: "json:amount", AuditLog: true}, "dlq")
	o, err := p.op(bad, "")
	if err != nil || o.kind != opDLQ || o.entry != "dlq:e9" || !strings.Contains(asString(o.args[len(o.args)-1]), "t/2/8") {
		t.Fatalf("dead letter: %+v, %v", o, err)
	}
	// A key that would land on the sink's own keys.
	p = testPlanner(t, Config{Addr: "a:1", Key: "connectd:dlq"}, "")
	if _, err := p.op(&connector.Record{EventID: "x"}, ""); err == nil || !strings.Contains(err.Error(), "sink's own keys") {
		t.Fatalf("reserved key: %v", err)
	}
	p = testPlanner(t, Config{Addr: "a:1", TestApplyCounter: true}, "")
	if _, err := p.op(&connector.Record{EventID: "connectd:applied:x"}, ""); err == nil {
		t.Fatal("a key under the apply counter prefix: want an error")
	}
}

// redisReply is an error reply as go-redis reports it.
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (redisReply) RedisError()     {}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want connector.CommitErrorKind
	}{
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, connector.Abortable},
		{&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, connector.CommitUnknown},
		{io.EOF, connector.CommitUnknown},
		{io.ErrUnexpectedEOF, connector.CommitUnknown},
		{errors.New("i/o timeout"), connector.CommitUnknown},
		{redisReply("OOM command not allowed when used memory > 'maxmemory'."), connector.Abortable},
		{redisReply("READONLY You can't write against a read only replica."), connector.Abortable},
		{redisReply("LOADING Redis is loading the dataset in memory"), connector.Abortable},
		{redisReply("BUSY Redis is busy running a script."), connector.Abortable},
		{redisReply("WRONGTYPE Operation against a key holding the wrong kind of value script: x"), connector.Fatal},
		{redisReply("NOPERM this user has no permissions"), connector.Fatal},
		{connector.NewCommitError(connector.Fenced, "commit", errors.New("x")), connector.Fenced},
	} {
		if got := connector.KindOf(classify("commit", tc.err)); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.err, got, tc.want)
		}
	}
}
