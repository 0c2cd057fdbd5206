package bench

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Machine is what the report says about where it ran.
type Machine struct {
	NProc    int
	CPU      string
	MemTotal string
	Kernel   string
	Load     string // 1/5/15-minute load averages at the start
}

// ReadMachine reads the machine's description from /proc.
func ReadMachine() Machine {
	m := Machine{NProc: runtime.NumCPU(), CPU: "?", MemTotal: "?", Kernel: "?", Load: "?"}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.CPU = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		m.MemTotal = v
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if f := loadavg(); len(f) >= 3 {
		m.Load = strings.Join(f[:3], " ")
	}
	return m
}

// loadavg is /proc/loadavg's fields (1/5/15-minute load averages first),
// or nil if it cannot be read.
func loadavg() []string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// Load1 is the one-minute load average, or 0 if /proc/loadavg cannot be
// read (0, not NaN: it goes into the JSON results, which have no NaN).
func Load1() float64 {
	f := loadavg()
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// procField returns the value of the first "key : value" line of a /proc
// file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Versions are the software measured and measured against.
type Versions struct {
	Connectd, Commit, Go, Kafka, KafkaStreams, Java, PostgreSQL, Redis string
}

// ReadVersions asks each component for its version.
func (r *Runner) ReadVersions(ctx context.Context) Versions {
	v := Versions{Go: runtime.Version(), Kafka: "?", KafkaStreams: "?", Java: javaVersion(), PostgreSQL: "-", Redis: "-"}
	// The commit is the measured binary's (`connectd version`), which
	// `make build` stamps; the harness's own checkout may differ.
	if out, err := exec.CommandContext(ctx, r.o.Connectd, "version").Output(); err == nil {
		for line := range strings.SplitSeq(string(out), "\n") {
			k, val, _ := strings.Cut(line, ":")
			if strings.HasPrefix(line, "connectd ") && v.Connectd == "" {
				v.Connectd = strings.TrimSpace(line)
			} else if strings.TrimSpace(k) == "commit" && len(strings.TrimSpace(val)) >= 12 {
				v.Commit = strings.TrimSpace(val)[:12]
			}
		}
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	if strings.HasSuffix(v.Connectd, "-dirty") {
		v.Commit += " (built from a modified work tree)"
	}
	if m, _ := filepath.Glob(filepath.Join(r.o.KafkaLibs, "kafka-clients-*.jar")); len(m) > 0 {
		v.Kafka = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m[0]), "kafka-clients-"), ".jar") + " (broker and TransactionalMessageCopier)"
	}
	for _, dir := range []string{r.o.StreamsDir, r.o.StreamsWindowDir} {
		if m, _ := filepath.Glob(filepath.Join(dir, "target", "lib", "kafka-streams-*.jar")); len(m) > 0 && dir != "" {
			v.KafkaStreams = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m[0]), "kafka-streams-"), ".jar")
			break
		}
	}
	if r.pg != nil {
		v.PostgreSQL = r.pg.version(ctx)
	}
	if r.redis != nil {
		v.Redis = r.redis.version(ctx)
	}
	return v
}
