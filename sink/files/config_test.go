package files

import (
	"strings"
	"testing"
	"time"
)

func TestValidateDefaults(t *testing.T) {
	c := Config{Path: "/data/out"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Format != FormatParquet || c.Compression != "snappy" || c.PartitionBy.Time != TimeRecord ||
		c.PartitionBy.Layout != DefaultLayout || c.Roll.MaxBytes != DefaultMaxBytes ||
		c.Roll.MaxInterval != DefaultMaxInterval || !c.fsync() || c.LockTimeout != DefaultLockTimeout {
		t.Errorf("defaults not applied: %+v", c)
	}
	if len(c.cols) != 2 || c.cols[0].name != "key" || c.cols[1].name != "value" {
		t.Errorf("default columns %+v, want key and value", c.cols)
	}
	if err := c.Validate(); err != nil { // validating twice is harmless
		t.Fatal(err)
	}
	if len(c.cols) != 2 {
		t.Errorf("second Validate: %d columns", len(c.cols))
	}
}

func TestValidateErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // the error's start
	}{
		{"no path", Config{}, "path: a directory is required"},
		{"format", Config{Path: "d", Format: "csv"}, `format: "csv" is not parquet or jsonl`},
		{"codec", Config{Path: "d", Compression: "lzo"}, `compression: "lzo" is not`},
		{"codec with jsonl", Config{Path: "d", Format: FormatJSONL, Compression: "zstd"}, "compression: \"zstd\" applies to parquet only"},
		{"time", Config{Path: "d", PartitionBy: PartitionBy{Time: "wallclock"}}, "partition_by.time: \"wallclock\" is not"},
		{"time path", Config{Path: "d", PartitionBy: PartitionBy{Time: "json:a..b"}}, "partition_by.time: path \"a..b\" has an empty segment"},
		{"layout not hive", Config{Path: "d", PartitionBy: PartitionBy{Layout: "2006/01/02"}}, "partition_by.layout: \"2006/01/02\" gives the directory \"2026\", not name=value"},
		{"layout hidden", Config{Path: "d", PartitionBy: PartitionBy{Layout: "_dt=2006-01-02"}}, "partition_by.layout: \"_dt=2006-01-02\": partition directory name \"_dt\" starts with _"},
		{"layout without time", Config{Path: "d", PartitionBy: PartitionBy{Time: TimeNone, Layout: "dt=2006"}}, "partition_by.layout: set, but partition_by.time is none"},
		{"field", Config{Path: "d", PartitionBy: PartitionBy{Field: "country"}}, `partition_by.field: "country" is not json:dot.path`},
		{"max bytes", Config{Path: "d", Roll: Roll{MaxBytes: -1}}, "roll.max_bytes: must be positive"},
		{"max interval", Config{Path: "d", Roll: Roll{MaxInterval: -time.Second}}, "roll.max_interval: must be positive"},
		{"lock timeout", Config{Path: "d", LockTimeout: -1}, "lock_timeout: must be positive"},
		{"fixed column", Config{Path: "d", Columns: map[string]string{"offset": "json:o::int64"}}, "columns.offset: the offset column is written by the sink itself"},
		{"column named like a directory", Config{Path: "d", Columns: map[string]string{"hour": "json:h::int64"}}, "columns.hour: hour is also a partition directory's name"},
		{"column type", Config{Path: "d", Columns: map[string]string{"n": "json:n::decimal"}}, `columns.n: type "decimal" is not int64`},
		{"column source", Config{Path: "d", Columns: map[string]string{"n": "body"}}, `columns.n: "body" is not key, value, header:NAME`},
		{"typed key", Config{Path: "d", Columns: map[string]string{"k": "key::int64"}}, "columns.k: key is text: ::int64 applies to json: paths only"},
		{"column name", Config{Path: "d", Columns: map[string]string{"a.b": "key"}}, `columns: "a.b" is not a column name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error starting %q", err, tc.want)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1000": 1000, "128MiB": 128 << 20, "64 KiB": 64 << 10, "1.5GB": 1_500_000_000, "2GiB": 2 << 30, "10B": 10} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err != nil || b != want {
			t.Errorf("%q: %d %v, want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1TB", "lots"} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("%q parsed as %d, want an error", in, b)
		}
	}
}

func TestNames(t *testing.T) {
	if got := escapeName("orders+eu/1 é"); got != "orders%2Beu%2F1%20%C3%A9" {
		t.Errorf("escapeName: %s", got)
	}
	for _, s := range []string{"", ".", ".."} {
		if e := escapeName(s); e == s || strings.ContainsAny(e, "/") || e == "" {
			t.Errorf("escapeName(%q) = %q", s, e)
		}
	}
	name := fileName("my+conn", tp0, 10, 99, 0, "parquet")
	if name != "my%2Bconn+in+0+10-99.parquet" {
		t.Errorf("fileName: %s", name)
	}
	if c2 := fileName("my+conn", tp0, 10, 99, 2, "parquet"); c2 != "my%2Bconn+in+0+10-99+c2.parquet" {
		t.Errorf("fileName copy 2: %s", c2)
	}
	for n, want := range map[string]bool{name: true, "my%2Bconn+in+0+10-99.jsonl": true, "other+in+0+10-99.parquet": false,
		"my%2Bconn+in+x+10-99.parquet": false, "my%2Bconn+in+0+10.parquet": false, "my%2Bconn+in+0+1-2-3.parquet": false,
		"my%2Bconn+in+0+10-99+c2.parquet": true, "my%2Bconn+orders.v1+0+10-99.jsonl": true, "my%2Bconn+in+0+10-99+c0.parquet": false,
		"my%2Bconn+in+0+10-99+x2.parquet": false, "my%2Bconn+in+0+10-99+c2+c3.parquet": false, "my%2Bconn+in+0+10-99": false} {
		if got := ownFile("my+conn", n); got != want {
			t.Errorf("ownFile(%s) = %v, want %v", n, got, want)
		}
	}
}
