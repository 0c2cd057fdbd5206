package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/metrics"
)

// noConnectors is a metrics.Source without connectors: the registry's
// descriptors do not depend on them.
type noConnectors struct{}

func (noConnectors) Names() []string                        { return nil }
func (noConnectors) Status(string) (connector.Status, bool) { return connector.Status{}, false }

// exported is every metric connectd's /metrics can show, with its label
// names, read from the registry's descriptors (histograms under their base
// name).
func exported(t *testing.T) map[string][]string {
	t.Helper()
	ch := make(chan *prometheus.Desc, 256)
	go func() {
		metrics.New(noConnectors{}).Registry.Describe(ch)
		close(ch)
	}()
	descRE := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for d := range ch {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read descriptor %s", d)
		}
		var labels []string
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
		out[m[1]] = labels
	}
	if _, rss := out["process_resident_memory_bytes"]; len(out["connectd_records_in_total"]) == 0 || !rss {
		t.Fatalf("the registry's descriptors are not what this test expects: %v", out)
	}
	return out
}

// scrapeLabels are added by Prometheus to every series it scrapes.
var scrapeLabels = []string{"job", "instance"}

var (
	seriesRE  = regexp.MustCompile(`\b((?:connectd|process|go)_[a-z0-9_]+)\b(\{([^}]*)\})?`)
	matcherRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	groupRE   = regexp.MustCompile(`\b(?:by|on|without|ignoring)\s*\(([^)]*)\)`)
)

// checkExpr requires every metric expr names to be exported, its label
// matchers to use the metric's labels, and its grouping labels to be
// labels of one of its metrics (or the histogram bucket's le, or a scrape
// label).
func checkExpr(t *testing.T, where, expr string, known map[string][]string) {
	t.Helper()
	var all []string
	found := false
	for _, m := range seriesRE.FindAllStringSubmatch(expr, -1) {
		name, base := m[1], m[1]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && known[b] != nil && known[name] == nil {
				base = b
			}
		}
		labels, ok := known[base]
		if ok && labels == nil {
			labels = []string{}
		}
		if !ok {
			t.Errorf("%s: %s is not a metric of connectd's /metrics", where, name)
			continue
		}
		found = true
		if base != name && strings.HasSuffix(name, "_bucket") {
			labels = append(slices.Clone(labels), "le")
		}
		all = append(all, labels...)
		for _, mm := range matcherRE.FindAllStringSubmatch(m[3], -1) {
			if !slices.Contains(labels, mm[1]) && !slices.Contains(scrapeLabels, mm[1]) {
				t.Errorf("%s: %s has no label %q (it has %v)", where, name, mm[1], labels)
			}
		}
	}
	if !found {
		t.Errorf("%s: no connectd metric in %q", where, expr)
	}
	for _, g := range groupRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(all, l) && !slices.Contains(scrapeLabels, l) {
				t.Errorf("%s: groups by %q, which none of its metrics has", where, l)
			}
		}
	}
}

// TestAlertRules: every rule's expression uses metrics and labels connectd
// exports, every rule says its severity and what it means, and promtool
// (from Debian's prometheus package, test/scripts/promtool.sh) accepts the
// file.
func TestAlertRules(t *testing.T) {
	known := exported(t)
	raw, err := os.ReadFile("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
	if err := yaml.UnmarshalWithOptions(raw, &file, yaml.Strict()); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	n := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			n++
			checkExpr(t, "alert "+r.Alert, r.Expr, known)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs a severity label, a summary and a description", r.Alert)
			}
		}
	}
	if n < 5 {
		t.Fatalf("%d alert rules; want FAILED, lag, no commit, hanging transaction and more", n)
	}

	promtool := filepath.Join(cacheDir(), "prometheus", "promtool")
	if _, err := os.Stat(promtool); err != nil {
		if p, lerr := exec.LookPath("promtool"); lerr == nil {
			promtool = p
		} else if testing.Short() {
			t.Skip("promtool is not here (make services puts it in the cache); -short skips it")
		} else {
			t.Fatalf("promtool is not at %s nor on PATH: run `make services` (test/scripts/promtool.sh)", promtool)
		}
	}
	out, err := exec.Command(promtool, "check", "rules", "prometheus/alerts.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// cacheDir is where the service scripts keep downloads (CONNECTD_CACHE).
func cacheDir() string {
	if d := os.Getenv("CONNECTD_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "connectd")
}

// TestDashboard: the Grafana dashboard is valid JSON, every panel has a
// query, and every query uses metrics and labels connectd exports.
func TestDashboard(t *testing.T) {
	known := exported(t)
	raw, err := os.ReadFile("grafana/connectd.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("connectd.json: %v", err)
	}
	titles := ""
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkExpr(t, "panel "+p.Title, q.Expr, known)
		}
		titles += strings.ToLower(p.Title) + "\n"
	}
	for _, want := range []string{"records", "lag", "commit latency", "aborted", "fenced", "dead letters", "hanging", "memory"} {
		if !strings.Contains(titles, want) {
			t.Errorf("no panel about %s", want)
		}
	}
}
