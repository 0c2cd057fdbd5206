package files

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

// codecs are the Parquet compression codecs compression names.
var codecs = map[string]compress.Codec{
	"snappy": &parquet.Snappy,
	"zstd":   &parquet.Zstd,
	"gzip":   &parquet.Gzip,
	"none":   &parquet.Uncompressed,
}

// rowsPerGroup bounds a Parquet row group, so that rolling a large staged
// segment holds one group's pages in memory, not the file's.
const rowsPerGroup = 64 * 1024

// parquetSchema is the files' schema: the fixed columns required, the
// configured ones optional (a JSON field may be missing). Timestamps are
// microseconds adjusted to UTC (DuckDB: TIMESTAMP WITH TIME ZONE).
func (c *Config) parquetSchema() *parquet.Schema {
	g := parquet.Group{
		ColumnEventID:   parquet.String(),
		ColumnTopic:     parquet.String(),
		ColumnPartition: parquet.Int(32),
		ColumnOffset:    parquet.Int(64),
		ColumnTimestamp: parquet.Timestamp(parquet.Microsecond),
	}
	for _, col := range c.cols {
		g[col.name] = parquet.Optional(leafOf(col.typ))
	}
	return parquet.NewSchema("connectd", g)
}

func leafOf(typ string) parquet.Node {
	switch typ {
	case TypeInt64:
		return parquet.Int(64)
	case TypeDouble:
		return parquet.Leaf(parquet.DoubleType)
	case TypeBool:
		return parquet.Leaf(parquet.BooleanType)
	case TypeTimestamp:
		return parquet.Timestamp(parquet.Microsecond)
	}
	return parquet.String()
}

// writeParquet converts the staged JSON lines in r into a Parquet file
// at path (fsynced when sync) and returns the number of rows.
func (c *Config) writeParquet(path string, r io.Reader, sync bool) (int64, error) {
	schema := c.parquetSchema()
	types := map[string]string{ColumnEventID: TypeString, ColumnTopic: TypeString, ColumnPartition: "int32",
		ColumnOffset: TypeInt64, ColumnTimestamp: TypeTimestamp}
	for _, col := range c.cols {
		types[col.name] = col.typ
	}
	type leaf struct {
		name     string
		typ      string
		optional bool
	}
	leaves := make([]leaf, len(schema.Columns()))
	for i, p := range schema.Columns() {
		lc, _ := schema.Lookup(p...)
		leaves[i] = leaf{name: p[0], typ: types[p[0]], optional: lc.MaxDefinitionLevel > 0}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := parquet.NewWriter(bw, schema, parquet.Compression(codecs[c.Compression]),
		parquet.MaxRowsPerRowGroup(rowsPerGroup), parquet.CreatedBy("connectd", "", ""))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<30)
	var n int64
	row := make(parquet.Row, len(leaves))
	for sc.Scan() {
		var vals map[string]any
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		if err := d.Decode(&vals); err != nil {
			return n, fmt.Errorf("staged row %d: %w", n+1, err)
		}
		for i, l := range leaves {
			v, err := parquetValue(l.typ, vals[l.name])
			if err != nil {
				return n, fmt.Errorf("staged row %d, column %s: %w", n+1, l.name, err)
			}
			def := 0
			if l.optional && !v.IsNull() {
				def = 1
			}
			row[i] = v.Level(0, def, i)
		}
		if _, err := w.WriteRows([]parquet.Row{row}); err != nil {
			return n, err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	if err := w.Close(); err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return n, err
		}
	}
	return n, f.Close()
}

// parquetValue converts a staged JSON value (decoded with UseNumber) to
// the column's Parquet value; nil is null.
func parquetValue(typ string, v any) (parquet.Value, error) {
	if v == nil {
		return parquet.NullValue(), nil
	}
	switch typ {
	case TypeString:
		if s, ok := v.(string); ok {
			return parquet.ByteArrayValue([]byte(s)), nil
		}
	case "int32":
		if n, ok := v.(json.Number); ok {
			i, err := strconv.ParseInt(string(n), 10, 32)
			return parquet.Int32Value(int32(i)), err
		}
	case TypeInt64:
		if n, ok := v.(json.Number); ok {
			i, err := strconv.ParseInt(string(n), 10, 64)
			return parquet.Int64Value(i), err
		}
	case TypeDouble:
		if n, ok := v.(json.Number); ok {
			f, err := strconv.ParseFloat(string(n), 64)
			return parquet.DoubleValue(f), err
		}
	case TypeBool:
		if b, ok := v.(bool); ok {
			return parquet.BooleanValue(b), nil
		}
	case TypeTimestamp:
		if s, ok := v.(string); ok {
			t, err := time.Parse(timeLayout, s)
			return parquet.Int64Value(t.UnixMicro()), err
		}
	}
	return parquet.Value{}, fmt.Errorf("staged value %v (%T) does not fit type %s", v, v, typ)
}

// readParquetRows reads the identity columns of every row of a Parquet
// file the sink wrote.
func readParquetRows(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	schema := pf.Schema()
	idx := map[string]int{}
	for _, name := range []string{ColumnEventID, ColumnTopic, ColumnPartition, ColumnOffset} {
		lc, ok := schema.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("%s has no %s column", path, name)
		}
		idx[name] = lc.ColumnIndex
	}
	rd := parquet.NewReader(pf)
	defer rd.Close()
	out := make([]Row, 0, pf.NumRows())
	buf := make([]parquet.Row, 1024)
	for {
		n, err := rd.ReadRows(buf)
		for _, r := range buf[:n] {
			var row Row
			for _, v := range r {
				switch v.Column() {
				case idx[ColumnEventID]:
					row.EventID = string(v.ByteArray())
				case idx[ColumnTopic]:
					row.Origin.Topic = string(v.ByteArray())
				case idx[ColumnPartition]:
					row.Origin.Partition = v.Int32()
				case idx[ColumnOffset]:
					row.Origin.Offset = v.Int64()
				}
			}
			out = append(out, row)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
}
