package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/connectd/connectd/connector"
)

const dsn = "postgres://u:secret@127.0.0.1:5432/db?sslmode=disable"

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // error prefix; "" = valid
	}{
		{"minimal", Config{DSN: dsn, Table: "t"}, ""},
		{"qualified", Config{DSN: dsn, Table: "s.t", Columns: map[string]string{"a": "json:a.b::bigint", "h": "header:x"}}, ""},
		{"no dsn", Config{Table: "t"}, "dsn:"},
		{"bad dsn", Config{DSN: "postgres://u:secret@[::1", Table: "t"}, "dsn:"},
		{"no table", Config{DSN: dsn}, "table:"},
		{"three-part table", Config{DSN: dsn, Table: "a.b.c"}, "table:"},
		{"conflict", Config{DSN: dsn, Table: "t", Conflict: "upsert"}, "conflict:"},
		{"batch", Config{DSN: dsn, Table: "t", BatchSize: -1}, "batch_size:"},
		{"source", Config{DSN: dsn, Table: "t", Columns: map[string]string{"a": "nope"}}, "columns.a:"},
		{"json type", Config{DSN: dsn, Table: "t", Columns: map[string]string{"a": "json:x::int"}}, "columns.a:"},
		{"json path", Config{DSN: dsn, Table: "t", Columns: map[string]string{"a": "json:x..y"}}, "columns.a:"},
		{"header name", Config{DSN: dsn, Table: "t", Columns: map[string]string{"a": "header:"}}, "columns.a:"},
		{"event_id column", Config{DSN: dsn, Table: "t", Columns: map[string]string{"event_id": "key"}}, "columns.event_id:"},
		{"apply_count column", Config{DSN: dsn, Table: "t", TestApplyCounter: true, Columns: map[string]string{"apply_count": "key"}}, "columns.apply_count:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error starting %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
	c := Config{DSN: dsn, Table: "s.t"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Conflict != DoNothing || c.OffsetsTable != "connectd_offsets" || c.DLQTable != "s.t_dlq" || c.BatchSize != 5000 {
		t.Fatalf("defaults: %+v", c)
	}
}

func mustConfig(t *testing.T, c Config) *Config {
	t.Helper()
	if c.DSN == "" {
		c.DSN = dsn
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestMapRecord(t *testing.T) {
	c := mustConfig(t, Config{Table: "t", Columns: map[string]string{
		"a_id": "event_id", "b_key": "key", "c_val": "value", "d_txt": "value_text", "e_ts": "timestamp",
		"f_top": "topic", "g_part": "partition", "h_off": "offset", "i_hdr": "header:h",
		"j_json": "json:o.x", "k_int": "json:n::bigint", "l_txt": "json:s::text", "m_num": "json:f::numeric",
		"n_bool": "json:b::boolean", "o_miss": "json:no.such::bigint", "p_numtxt": "json:n::text",
	}})
	m := mapper{cols: c.cols}
	r := &connector.Record{Key: []byte("k"), Value: []byte(`{"o":{"x":[1,2]},"n":42,"s":"str","f":1.5,"b":true}`),
		EventID: "id", Headers: []connector.Header{{Key: "h", Value: []byte("hv")}},
		Origin: connector.Origin{Topic: "in", Partition: 3, Offset: 9}}
	got, err := m.mapRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for i, v := range got {
		if !v.Valid {
			s = append(s, c.cols[i].name+"=NULL")
		} else {
			s = append(s, c.cols[i].name+"="+v.String)
		}
	}
	want := `a_id=id b_key=k c_val={"o":{"x":[1,2]},"n":42,"s":"str","f":1.5,"b":true} d_txt={"o":{"x":[1,2]},"n":42,"s":"str","f":1.5,"b":true} e_ts=NULL f_top=in g_part=3 h_off=9 i_hdr=hv j_json=[1,2] k_int=42 l_txt=str m_num=1.5 n_bool=true o_miss=NULL p_numtxt=42`
	if strings.Join(s, " ") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(s, " "), want)
	}

	for _, tc := range []struct {
		name  string
		cols  map[string]string
		value string
		key   []byte
		want  string // "" = maps fine
	}{
		{"value not JSON", map[string]string{"v": "value"}, "nope", nil, "value is not JSON"},
		{"json: on a non-JSON value", map[string]string{"v": "json:a"}, "nope", nil, "value is not JSON"},
		{"json: on a JSON array", map[string]string{"v": "json:a"}, "[1]", nil, ""},
		{"missing path is NULL", map[string]string{"v": "json:a.b::bigint"}, `{"a":1}`, nil, ""},
		{"int does not parse", map[string]string{"v": "json:a::bigint"}, `{"a":"x"}`, nil, "want an integer"},
		{"int is a float", map[string]string{"v": "json:a::bigint"}, `{"a":1.5}`, nil, "want an integer"},
		{"bool", map[string]string{"v": "json:a::boolean"}, `{"a":1}`, nil, "want true or false"},
		{"numeric", map[string]string{"v": "json:a::numeric"}, `{"a":"1"}`, nil, "want a number"},
		{"NUL in jsonb", map[string]string{"v": "value"}, `{"a":"\u0000"}`, nil, `\u0000`},
		{"key not UTF-8", map[string]string{"v": "key"}, `{}`, []byte{0xff}, "UTF-8"},
		{"key with NUL", map[string]string{"v": "key"}, `{}`, []byte{'a', 0}, "NUL"},
		{"truncated JSON", map[string]string{"v": "json:a"}, `{"a":1`, nil, "value is not JSON"},
		{"empty value", map[string]string{"v": "json:a"}, "", nil, "not JSON"},
		{"path through a scalar is NULL", map[string]string{"v": "json:a.b::bigint"}, `{"a":"x"}`, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustConfig(t, Config{Table: "t", Columns: tc.cols})
			m := mapper{cols: c.cols}
			_, err := m.mapRecord(&connector.Record{Key: tc.key, Value: []byte(tc.value)})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestMapRecordPaths: path segments are literal keys (gjson's wildcard and
// query characters have no meaning in them), and a numeric segment indexes
// an array.
func TestMapRecordPaths(t *testing.T) {
	for _, tc := range []struct {
		spec, value string
		want        string // "NULL" for NULL
	}{
		{"json:a*b::text", `{"a*b":"star","ab":"no"}`, "star"},
		{"json:a?::text", `{"a?":"q","ab":"no"}`, "q"},
		{"json:#::bigint", `{"#":7}`, "7"},
		{"json:x|y::text", `{"x|y":"pipe","x":"no"}`, "pipe"},
		{"json:@this::text", `{"@this":"at"}`, "at"},
		{"json:items.1.sku::text", `{"items":[{"sku":"a"},{"sku":"b"}]}`, "b"},
		{"json:items.5.sku::text", `{"items":[{"sku":"a"}]}`, "NULL"},
		{"json:s::text", `{"s":"tab\there \u00e9"}`, "tab	here é"},
		{"json:n::text", `{"n":null}`, "NULL"},
		{"json:o", `{"o": {"k": [1, 2]} }`, `{"k": [1, 2]}`},
	} {
		c := mustConfig(t, Config{Table: "t", Columns: map[string]string{"v": tc.spec}})
		m := mapper{cols: c.cols}
		got, err := m.mapRecord(&connector.Record{Value: []byte(tc.value)})
		if err != nil {
			t.Fatalf("%s on %s: %v", tc.spec, tc.value, err)
		}
		s := "NULL"
		if got[0].Valid {
			s = got[0].String
		}
		if s != tc.want {
			t.Errorf("%s on %s = %q, want %q", tc.spec, tc.value, s, tc.want)
		}
	}
}

func TestStatements(t *testing.T) {
	c := mustConfig(t, Config{Table: "s.Events", Columns: map[string]string{"amount": "json:a::bigint", "body": "value"}})
	s := buildStatements(c, true)
	want := `INSERT INTO "s"."Events" AS t ("event_id", "amount", "body") SELECT u.c0, u.c1::bigint, u.c2::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c0, c1, c2) ON CONFLICT (event_id) DO NOTHING`
	if s.insert != want {
		t.Fatalf("insert:\n got %s\nwant %s", s.insert, want)
	}
	if !strings.Contains(s.createTable, `"event_id" text PRIMARY KEY`) || !strings.Contains(s.createTable, `"amount" bigint`) {
		t.Fatalf("create: %s", s.createTable)
	}
	if alo := buildStatements(c, false); strings.Contains(alo.insert, "ON CONFLICT") || strings.Contains(alo.createTable, "PRIMARY KEY") {
		t.Fatalf("at_least_once must insert plainly into a table without a key:\n%s\n%s", alo.insert, alo.createTable)
	}
	for _, tc := range []struct {
		conflict string
		counter  bool
		want     string
	}{
		{DoNothing, false, "ON CONFLICT (event_id) DO NOTHING"},
		{DoNothing, true, "ON CONFLICT (event_id) DO UPDATE SET apply_count = t.apply_count + 1"},
		{DoUpdate, false, `ON CONFLICT (event_id) DO UPDATE SET "amount" = EXCLUDED."amount", "body" = EXCLUDED."body"`},
		{DoUpdate, true, `ON CONFLICT (event_id) DO UPDATE SET "amount" = EXCLUDED."amount", "body" = EXCLUDED."body", apply_count = t.apply_count + 1`},
	} {
		c := mustConfig(t, Config{Table: "t", Conflict: tc.conflict, TestApplyCounter: tc.counter, Columns: map[string]string{"amount": "json:a::bigint", "body": "value"}})
		if got := conflictClause(c); got != tc.want {
			t.Errorf("%s counter=%v:\n got %s\nwant %s", tc.conflict, tc.counter, got, tc.want)
		}
	}
	if !strings.Contains(s.cas, "o.claim_epoch = u.epoch AND o.next_offset = u.prev") || !strings.Contains(s.claim, "SET claim_epoch = o.claim_epoch + 1") {
		t.Fatalf("claim/cas:\n%s\n%s", s.claim, s.cas)
	}
}

func TestClassify(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "m"} }
	netErr := errors.New("read tcp: connection reset by peer")
	for _, tc := range []struct {
		err        error
		commitSent bool
		want       connector.CommitErrorKind
	}{
		{pg("40001"), false, connector.Abortable},
		{pg("40001"), true, connector.Abortable},
		{pg("40P01"), false, connector.Abortable},
		{pg("40P01"), true, connector.Abortable},
		{netErr, false, connector.Abortable},
		{netErr, true, connector.CommitUnknown},
		{pg("57P01"), false, connector.Abortable}, // terminated before COMMIT
		{pg("57P01"), true, connector.CommitUnknown},
		{pg("23502"), false, connector.Fatal},
		{pg("22P02"), false, connector.Fatal},
		{pg("42P01"), false, connector.Fatal},
		{pg("53300"), false, connector.Abortable},
		{connector.NewCommitError(connector.Fenced, "x", netErr), true, connector.Fenced},
	} {
		if got := connector.KindOf(classify("op", tc.err, tc.commitSent)); got != tc.want {
			t.Errorf("classify(%v, commit sent %v) = %s, want %s", tc.err, tc.commitSent, got, tc.want)
		}
	}
	if classify("op", nil, true) != nil {
		t.Fatal("nil error classified")
	}
}

// mapAhead yields every record once, in order, in chunks that grow from
// firstChunk to streamChunk; done may be called before the chunks are read.
func TestMapAhead(t *testing.T) {
	s := New(Config{DSN: "postgres://unused", Table: "t", Columns: map[string]string{"v": "json:i::bigint"}}, Options{ExactlyOnce: true})
	var batch []*connector.Record
	for i := range 5000 {
		batch = append(batch, &connector.Record{EventID: fmt.Sprint(i), Value: fmt.Appendf(nil, `{"i":%d}`, i)})
	}
	chunks, done := s.mapAhead(batch)
	var sizes []int
	next := 0
	for m := range chunks {
		if m.err != nil {
			t.Fatal(m.err)
		}
		sizes = append(sizes, len(m.items))
		for _, it := range m.items {
			if it.rec != batch[next] || it.vals[0].String != fmt.Sprint(next) {
				t.Fatalf("item %d is %s=%s", next, it.rec.EventID, it.vals[0].String)
			}
			next++
		}
	}
	done()
	if next != len(batch) || fmt.Sprint(sizes) != "[256 512 1024 1024 1024 1024 136]" {
		t.Fatalf("%d records in chunks %v", next, sizes)
	}
	_, done = s.mapAhead(batch)
	done() // stops early, returns once the goroutine is gone
}
