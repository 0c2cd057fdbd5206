package bench

import (
	"bufio"
	"context"
	"os/exec"
	"strconv"
	"strings"
)

// MicroPackages are the hot paths with `go test -bench` microbenchmarks
// that need no services: the transform chain, the record processor
// (event IDs + chain), record conversion in and out of Kafka, event-ID
// derivation, and the window stage's Add and Flush. Each benchmark handles one record per op, so allocs/op is
// allocations per record.
var MicroPackages = []string{"./transform", "./pipeline", "./source/kafka", "./sink/kafka", "./idempotency", "./window"}

// MicroResult is one benchmark line, per record.
type MicroResult struct {
	Package     string
	Name        string // without the -GOMAXPROCS suffix
	NsPerOp     float64
	BytesPerOp  float64
	AllocsPerOp float64
}

// RunMicro runs the microbenchmarks with -benchmem in dir and parses them.
func RunMicro(ctx context.Context, dir string) ([]MicroResult, string, error) {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1"}, MicroPackages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return ParseBench(string(out)), "go " + strings.Join(args, " "), err
}

// ParseBench parses `go test -bench -benchmem` output.
func ParseBench(out string) []MicroResult {
	var res []MicroResult
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "pkg:" {
			pkg = f[1]
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		m := MicroResult{Package: pkg, Name: f[0]}
		if i := strings.LastIndexByte(m.Name, '-'); i > 0 {
			if _, err := strconv.Atoi(m.Name[i+1:]); err == nil {
				m.Name = m.Name[:i]
			}
		}
		// A benchmark over batches reports per-record metrics of its own;
		// they win over the per-op (per-batch) ones.
		perRecord := map[string]bool{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit, per, _ := strings.Cut(f[i+1], "/")
			if per == "record" {
				perRecord[unit] = true
			} else if per != "op" || perRecord[unit] {
				continue
			}
			switch unit {
			case "ns":
				m.NsPerOp = v
			case "B":
				m.BytesPerOp = v
			case "allocs":
				m.AllocsPerOp = v
			}
		}
		res = append(res, m)
	}
	return res
}
