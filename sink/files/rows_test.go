package files

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/connectd/connectd/connector"
)

func TestMapRecord(t *testing.T) {
	cfg := testConfig(t, FormatParquet)
	cfg.Columns["h"] = "header:trace"
	cfg.Columns["missing"] = "json:no.such::double"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := rec(tp1, 75)
	r.Headers = []connector.Header{{Key: "trace", Value: []byte("t\"1\n")}}
	m, err := cfg.mapRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.dir != "dt=2026-12-04/hour=14" {
		t.Errorf("dir %q, want dt=2026-12-04/hour=14 (offset 75 is 14:15)", m.dir)
	}
	want := `{"event_id":"in-1-75","topic":"in","partition":1,"offset":75,"timestamp":"2026-12-04T14:15:00.000000Z",` +
		`"amount":75.25,"at":"2026-12-04T14:15:00.000000Z","h":"t\"1\n","key":"k75","missing":null,"n":75,"name":"e75","ok":false}` + "\n"
	if string(m.line) != want {
		t.Errorf("line\n%s want\n%s", m.line, want)
	}
	if !json.Valid(m.line) {
		t.Error("the line is not JSON")
	}
}

func TestMapRecordTypesAndRefusals(t *testing.T) {
	cfg := Config{Path: "d", Columns: map[string]string{"v": ""}}
	for _, tc := range []struct {
		typ, value string
		want       string // the JSON written, or "!" + the start of the error
	}{
		{"int64", `{"f":12}`, `12`},
		{"int64", `{"f":-9223372036854775808}`, `-9223372036854775808`},
		{"int64", `{"f":9223372036854775808}`, `!column v: f is 9223372036854775808, not an integer`},
		{"int64", `{"f":1.5}`, `!column v: f is 1.5, not an integer`},
		{"int64", `{"f":"12"}`, `!column v: f is "12", not an integer`},
		{"double", `{"f":3}`, `3.0`},
		{"double", `{"f":1e300}`, `1e+300`},
		{"double", `{"f":1e400}`, `!column v: f is 1e400, out of the double range`},
		{"double", `{"f":true}`, `!column v: f is true, not a number`},
		{"bool", `{"f":false}`, `false`},
		{"bool", `{"f":0}`, `!column v: f is 0, not true or false`},
		{"string", `{"f":"a\u00e9"}`, `"aé"`},
		{"string", `{"f":{"x":[1]}}`, `"{\"x\":[1]}"`},
		{"string", `{"f":null}`, `null`},
		{"string", `{}`, `null`},
		{"timestamp", `{"f":"2026-12-04T13:00:00.1234567+01:00"}`, `"2026-12-04T12:00:00.123456Z"`},
		{"timestamp", `{"f":1796389200000}`, `"2026-12-04T13:00:00.000000Z"`},
		{"timestamp", `{"f":"yesterday"}`, `!column v: f is "yesterday", not an RFC 3339 time`},
		{"string", `not json`, `!value is not JSON`},
	} {
		cfg.Columns["v"] = "json:f::" + tc.typ
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		r := &connector.Record{EventID: "e", Value: []byte(tc.value), Timestamp: base}
		m, err := cfg.mapRecord(r)
		if strings.HasPrefix(tc.want, "!") {
			if err == nil || !strings.HasPrefix(err.Error(), tc.want[1:]) {
				t.Errorf("%s %s: error %v, want %q", tc.typ, tc.value, err, tc.want[1:])
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tc.typ, tc.value, err)
			continue
		}
		if got := string(m.line); !strings.HasSuffix(got, `"v":`+tc.want+"}\n") {
			t.Errorf("%s %s: %s, want v = %s", tc.typ, tc.value, got, tc.want)
		}
	}
	// Text columns refuse bytes that are not UTF-8, as does the event ID.
	text := Config{Path: "d"}
	if err := text.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := text.mapRecord(&connector.Record{EventID: "e", Value: []byte{0xff}}); err == nil || !strings.Contains(err.Error(), "column value: is not valid UTF-8") {
		t.Errorf("a value that is not UTF-8: %v", err)
	}
	if _, err := text.mapRecord(&connector.Record{EventID: "\xff"}); err == nil {
		t.Error("an event ID that is not UTF-8 was mapped")
	}
}

func TestPartitionDirectories(t *testing.T) {
	for _, tc := range []struct {
		by    PartitionBy
		value string
		want  string // or "!" + the start of the error
	}{
		{PartitionBy{}, `{}`, "dt=2026-12-04/hour=13"},
		{PartitionBy{Time: TimeNone}, `{}`, ""},
		{PartitionBy{Layout: "year=2006/month=01"}, `{}`, "year=2026/month=12"},
		{PartitionBy{Time: "json:t"}, `{"t":"2025-01-02T03:04:05-02:00"}`, "dt=2025-01-02/hour=05"},
		{PartitionBy{Time: "json:t"}, `{"t":0}`, "dt=1970-01-01/hour=00"},
		{PartitionBy{Time: "json:t"}, `{}`, "!partition_by.time: t is missing"},
		{PartitionBy{Time: TimeNone, Field: "json:geo.country"}, `{"geo":{"country":"fr/be=1"}}`, "country=fr%2Fbe%3D1"},
		{PartitionBy{Field: "json:geo.country"}, `{"geo":{}}`, "dt=2026-12-04/hour=13/country=" + hiveDefault},
		{PartitionBy{Field: "json:c"}, `{"c":7}`, "dt=2026-12-04/hour=13/c=7"},
		{PartitionBy{Field: "json:c"}, `{"c":[1]}`, "!partition_by.field: c is an array"},
		{PartitionBy{Field: "json:c"}, `{"c":""}`, "!partition_by.field: c is an empty string"},
	} {
		cfg := Config{Path: "d", PartitionBy: tc.by}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		m, err := cfg.mapRecord(&connector.Record{EventID: "e", Value: []byte(tc.value), Timestamp: base})
		if strings.HasPrefix(tc.want, "!") {
			if err == nil || !strings.HasPrefix(err.Error(), tc.want[1:]) {
				t.Errorf("%+v %s: error %v, want %q", tc.by, tc.value, err, tc.want[1:])
			}
			continue
		}
		if err != nil || m.dir != tc.want {
			t.Errorf("%+v %s: dir %q %v, want %q", tc.by, tc.value, m.dir, err, tc.want)
		}
	}
}

func TestDeadLetterLine(t *testing.T) {
	r := rec(tp0, 3)
	r.Key = []byte{0xff, 0}
	r.Headers = []connector.Header{{Key: connector.HeaderDLQStage, Value: []byte("transform 0 (set)")}, {Key: connector.HeaderDLQMessage, Value: []byte("bad")}}
	var got map[string]any
	if err := json.Unmarshal(deadLetterLine(r, nil), &got); err != nil {
		t.Fatal(err)
	}
	if got["stage"] != "transform 0 (set)" || got["message"] != "bad" || got["key"] != nil || got["key_base64"] != "/wA=" ||
		got["event_id"] != "in-0-3" || got["offset"] != 3.0 || !strings.HasPrefix(got["value"].(string), `{"n":3`) {
		t.Errorf("dead letter %v", got)
	}
	if err := json.Unmarshal(deadLetterLine(r, errString("no")), &got); err != nil || got["stage"] != "sink" || got["message"] != "record in/0/3: sink: no" {
		t.Errorf("the sink's own dead letter: %v %v", got, err)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
