// Package files is connectd's file sink (`type: files`): Parquet or JSON
// Lines files in a directory tree with Hive-style partition directories
// (dt=2026-12-04/hour=13/), the batch layer of a Lambda or Kappa system.
// With exactly_once every batch's rows and the input checkpoint are
// committed together by replacing one manifest file atomically (write,
// fsync, rename, fsync the directory), so a crash at any point leaves the
// old or the new manifest and no file is ever counted twice; claim epochs
// in the manifest fence zombies as in the PostgreSQL and Redis sinks
// (txn.SinkOffsets drives it through connector.SinkStore). With
// at_least_once the same writer runs without the compare-and-set.
//
// Rows are staged per input partition and directory until the file rolls
// (roll.max_bytes, roll.max_interval, or the store closing); a rolled file
// is named from its connector, input partition and offset range
// (<connector>+<topic>+<partition>+<first>-<last>.parquet), so a name is
// unique and the same input writes the same name again.
package files

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/connectd/connectd/jsonpath"
)

// Formats of the data files.
const (
	FormatParquet = "parquet"
	FormatJSONL   = "jsonl"
)

// Column types, as columns name them after "::".
const (
	TypeInt64     = "int64"
	TypeDouble    = "double"
	TypeString    = "string"
	TypeBool      = "bool"
	TypeTimestamp = "timestamp"
)

// The columns every file has, whatever columns says.
const (
	ColumnEventID   = "event_id"
	ColumnTopic     = "topic"
	ColumnPartition = "partition"
	ColumnOffset    = "offset"
	ColumnTimestamp = "timestamp"
)

// fixedColumns are the columns every row has, in file order.
var fixedColumns = []string{ColumnEventID, ColumnTopic, ColumnPartition, ColumnOffset, ColumnTimestamp}

// Defaults of the config fields.
const (
	DefaultLayout      = "dt=2006-01-02/hour=15"
	DefaultMaxBytes    = 128 << 20
	DefaultMaxInterval = 5 * time.Minute
	DefaultCompression = "snappy"
	DefaultLockTimeout = 30 * time.Second
	// TimeNone, as partition_by.time, turns time directories off.
	TimeNone = "none"
	// TimeRecord, as partition_by.time, is the record's timestamp.
	TimeRecord = "timestamp"
)

// Config is the `sink: {type: files}` section.
type Config struct {
	// Path is the root directory of the output. Required. The sink keeps
	// its manifests, staged rows and lock under <path>/_connectd and dead
	// letters under <path>/_dead_letters: Hive, Spark and DuckDB's
	// hive-partitioned globs skip directories starting with "_".
	Path string `yaml:"path"`
	// Format is parquet (default) or jsonl.
	Format string `yaml:"format"`
	// Compression is the Parquet codec: snappy (default), zstd, gzip or
	// none. JSON Lines files are not compressed.
	Compression string `yaml:"compression"`
	// PartitionBy chooses the Hive-style directories of a row.
	PartitionBy PartitionBy `yaml:"partition_by"`
	// Roll says when staged rows become a file.
	Roll Roll `yaml:"roll"`
	// Columns maps a column name to its source: key, value (the record's
	// key and value as text), header:NAME, or json:dot.path with an
	// optional ::type (int64, double, string, bool, timestamp; default
	// string). event_id, topic, partition, offset and timestamp are
	// always written and need no entry. Default: key and value.
	Columns map[string]string `yaml:"columns"`
	// Fsync makes every commit durable against a machine crash (files,
	// staged rows, the manifest and their directories are fsynced).
	// Default true; false survives a process crash only.
	Fsync *bool `yaml:"fsync"`
	// LockTimeout bounds the wait for the directory's lock (one process
	// commits at a time); a commit that waits longer is aborted and
	// retried. Default 30s.
	LockTimeout time.Duration `yaml:"lock_timeout"`

	cols   []column // parsed Columns, sorted by name
	timeAt *jsonpath.Path
	field  *jsonpath.Path
	dirKey string // the field directory's name
}

// PartitionBy is the `partition_by` section: a row's directory is the time
// directories (the event time formatted with layout), then the field's
// directory (name=value), either of which may be absent.
type PartitionBy struct {
	// Time is the event time: timestamp (the record's, default),
	// json:dot.path (an RFC 3339 string or a number of milliseconds since
	// the epoch), or none (no time directories).
	Time string `yaml:"time"`
	// Layout formats the event time, in UTC, as Go's time layout: its
	// segments must each be name=value. Default "dt=2006-01-02/hour=15".
	Layout string `yaml:"layout"`
	// Field, json:dot.path, adds a directory <last segment>=<value> after
	// the time directories; a row without it goes to
	// <name>=__HIVE_DEFAULT_PARTITION__, as Hive does.
	Field string `yaml:"field"`
}

// Roll is the `roll` section. A partition's staged rows for one directory
// roll into a file at the first commit after either limit is reached, and
// when the store closes.
type Roll struct {
	// MaxBytes rolls staged rows when they reach this size (of their JSON
	// form): a number of bytes or a size such as 64MiB. Default 128MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxInterval rolls staged rows this long after the first of them was
	// staged. Default 5m.
	MaxInterval time.Duration `yaml:"max_interval"`
}

// ByteSize is a size in bytes, written as a number or with a unit (KiB,
// MiB, GiB, KB, MB, GB, B).
type ByteSize int64

// UnmarshalText parses "134217728", "128MiB" or "1.5GB".
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v*mult > 1<<62 {
		return fmt.Errorf("%q is not a size (want bytes, or a number with KiB, MiB, GiB, KB, MB or GB)", string(text))
	}
	*b = ByteSize(v * mult)
	return nil
}

// column is one parsed entry of Columns.
type column struct {
	name   string
	source string // "key", "value", "header", "json"
	header string
	path   jsonpath.Path
	typ    string
}

// fsync reports whether the config asks for fsyncs (the default).
func (c *Config) fsync() bool { return c.Fsync == nil || *c.Fsync }

// Validate applies defaults and checks the config without touching the
// file system; errors start with the field name ("roll.max_bytes: ...")
// so they can be positioned.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.Path) == "" {
		return errors.New("path: a directory is required")
	}
	switch c.Format {
	case "":
		c.Format = FormatParquet
	case FormatParquet, FormatJSONL:
	default:
		return fmt.Errorf("format: %q is not %s or %s", c.Format, FormatParquet, FormatJSONL)
	}
	switch {
	case c.Format == FormatJSONL && c.Compression != "" && c.Compression != "none":
		return fmt.Errorf("compression: %q applies to parquet only; JSON Lines files are written uncompressed", c.Compression)
	case c.Format == FormatJSONL:
	case c.Compression == "":
		c.Compression = DefaultCompression
	default:
		if _, ok := codecs[c.Compression]; !ok {
			return fmt.Errorf("compression: %q is not snappy, zstd, gzip or none", c.Compression)
		}
	}
	if err := c.validatePartitioning(); err != nil {
		return err
	}
	if c.Roll.MaxBytes == 0 {
		c.Roll.MaxBytes = DefaultMaxBytes
	}
	if c.Roll.MaxBytes < 0 {
		return errors.New("roll.max_bytes: must be positive")
	}
	if c.Roll.MaxInterval == 0 {
		c.Roll.MaxInterval = DefaultMaxInterval
	}
	if c.Roll.MaxInterval < 0 {
		return errors.New("roll.max_interval: must be positive")
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	if c.LockTimeout < 0 {
		return errors.New("lock_timeout: must be positive")
	}
	return c.validateColumns()
}

func (c *Config) validatePartitioning() error {
	p := &c.PartitionBy
	c.timeAt, c.field, c.dirKey = nil, nil, ""
	switch {
	case p.Time == "":
		p.Time = TimeRecord
	case p.Time == TimeRecord, p.Time == TimeNone:
	case strings.HasPrefix(p.Time, "json:"):
		path, err := jsonpath.Parse(strings.TrimPrefix(p.Time, "json:"))
		if err != nil {
			return fmt.Errorf("partition_by.time: %v", err)
		}
		c.timeAt = &path
	default:
		return fmt.Errorf("partition_by.time: %q is not timestamp, json:dot.path or none", p.Time)
	}
	if p.Time == TimeNone {
		if p.Layout != "" {
			return errors.New("partition_by.layout: set, but partition_by.time is none")
		}
	} else {
		if p.Layout == "" {
			p.Layout = DefaultLayout
		}
		if err := checkLayout(p.Layout); err != nil {
			return fmt.Errorf("partition_by.layout: %v", err)
		}
	}
	if p.Field != "" {
		if !strings.HasPrefix(p.Field, "json:") {
			return fmt.Errorf("partition_by.field: %q is not json:dot.path", p.Field)
		}
		path, err := jsonpath.Parse(strings.TrimPrefix(p.Field, "json:"))
		if err != nil {
			return fmt.Errorf("partition_by.field: %v", err)
		}
		segs := path.Segments()
		c.field, c.dirKey = &path, segs[len(segs)-1]
		if err := checkDirName(c.dirKey); err != nil {
			return fmt.Errorf("partition_by.field: %v", err)
		}
	}
	return nil
}

// checkLayout formats two sample times with layout and checks that every
// directory is name=value, with a name a reader can use and a value that
// varies only with the time.
func checkLayout(layout string) error {
	for _, t := range []time.Time{time.Date(2026, 12, 4, 13, 5, 6, 0, time.UTC), time.Date(1999, 1, 31, 0, 0, 0, 0, time.UTC)} {
		dir := t.Format(layout)
		for _, seg := range strings.Split(dir, "/") {
			name, value, ok := strings.Cut(seg, "=")
			if !ok || value == "" {
				return fmt.Errorf("%q gives the directory %q, not name=value (Hive style, e.g. dt=2006-01-02/hour=15)", layout, seg)
			}
			if err := checkDirName(name); err != nil {
				return fmt.Errorf("%q: %v", layout, err)
			}
			if strings.ContainsAny(value, `\`) || value == "." || value == ".." {
				return fmt.Errorf("%q gives the directory value %q", layout, value)
			}
		}
	}
	return nil
}

// checkDirName checks a partition directory's name (the part before "=").
func checkDirName(name string) error {
	switch {
	case name == "":
		return errors.New("a partition directory needs a name before =")
	case strings.HasPrefix(name, "_") || strings.HasPrefix(name, "."):
		return fmt.Errorf("partition directory name %q starts with _ or ., which readers skip as hidden", name)
	case strings.ContainsAny(name, `/\=%`) || !utf8.ValidString(name):
		return fmt.Errorf("partition directory name %q has a character a path cannot hold", name)
	}
	return nil
}

func (c *Config) validateColumns() error {
	if c.Columns == nil {
		c.Columns = map[string]string{"key": "key", "value": "value"}
	}
	names := make([]string, 0, len(c.Columns))
	for name := range c.Columns {
		names = append(names, name)
	}
	slices.Sort(names)
	dirs := c.dirNames()
	c.cols = c.cols[:0]
	for _, name := range names {
		field := "columns." + name
		switch {
		case name == "" || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == '.' }) || !utf8.ValidString(name):
			return fmt.Errorf("columns: %q is not a column name (no dots or control characters)", name)
		case slices.Contains(fixedColumns, name):
			return fmt.Errorf("%s: the %s column is written by the sink itself; remove this entry", field, name)
		case slices.Contains(dirs, name):
			return fmt.Errorf("%s: %s is also a partition directory's name, which a hive-partitioned reader adds as a column", field, name)
		}
		col, err := parseColumn(name, c.Columns[name])
		if err != nil {
			return fmt.Errorf("%s: %v", field, err)
		}
		c.cols = append(c.cols, col)
	}
	return nil
}

// dirNames are the names of the partition directories (dt, hour, ...).
func (c *Config) dirNames() []string {
	var names []string
	if c.PartitionBy.Time != TimeNone {
		for _, seg := range strings.Split(time.Unix(0, 0).UTC().Format(c.PartitionBy.Layout), "/") {
			name, _, _ := strings.Cut(seg, "=")
			names = append(names, name)
		}
	}
	if c.dirKey != "" {
		names = append(names, c.dirKey)
	}
	return names
}

// parseColumn parses "key", "value", "header:NAME" or
// "json:dot.path[::type]".
func parseColumn(name, spec string) (column, error) {
	col := column{name: name, typ: TypeString}
	src, typ, typed := strings.Cut(spec, "::")
	if typed {
		switch typ {
		case TypeInt64, TypeDouble, TypeString, TypeBool, TypeTimestamp:
			col.typ = typ
		default:
			return col, fmt.Errorf("type %q is not int64, double, string, bool or timestamp", typ)
		}
	}
	switch {
	case src == "key" || src == "value":
		col.source = src
	case strings.HasPrefix(src, "header:") && len(src) > len("header:"):
		col.source, col.header = "header", strings.TrimPrefix(src, "header:")
	case strings.HasPrefix(src, "json:"):
		p, err := jsonpath.Parse(strings.TrimPrefix(src, "json:"))
		if err != nil {
			return col, err
		}
		col.source, col.path = "json", p
		return col, nil
	default:
		return col, fmt.Errorf("%q is not key, value, header:NAME or json:dot.path[::type]", spec)
	}
	if col.typ != TypeString {
		return col, fmt.Errorf("%s is text: ::%s applies to json: paths only", src, col.typ)
	}
	return col, nil
}
