package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
	"github.com/connectd/connectd/pipeline"
)

// scenario is one row group of the matrix: an input, a topology of
// connectd instances and a fault schedule.
type scenario struct {
	id    string // short, unique: part of every name the run creates
	name  string // as shown in RESULTS.md
	input inputSpec
	// instances started at the beginning (a, b, c, ...); more may be
	// started by the faults.
	instances      int
	sessionTimeout string // default 6s
	txnTimeout     string // default 10s
	// include selects the cells that run (nil: every sink and guarantee);
	// skipped says why the others do not, for the table.
	include func(sink, guarantee string) bool
	skipped string
	// redisFsync is the Redis appendfsync policy during the scenario
	// (default always).
	redisFsync string
	faults     []step
	// windowed lists the sink setups ("kafka", "postgres", "redis") whose
	// windowed exactly_once connector joins the scenario's processes:
	// those the faults reach, so each must show its bite.
	windowed []string
	// inputOnly: the scenario's "fault" is its input (aborted
	// transactions, poison events); what bit is read from the input.
	inputOnly bool
	// mutate: after a clean check, corrupt the sinks and require the
	// checker to catch it (mutateAndRecheck).
	mutate bool
}

// dupsNowhere: the fault cannot duplicate at_least_once output, for why.
func dupsNowhere(why string) func(string) string {
	return func(string) string { return why }
}

// dupsIn: the fault can duplicate at_least_once output of the sink setups
// it touches (those for which touches is true); the others see nothing of
// it.
func dupsIn(touches func(sink string) bool, why string) func(string) string {
	return func(sink string) string {
		if touches(sink) {
			return ""
		}
		return why
	}
}

// step is one fault of a schedule: it injects, waits, and removes the
// fault before it returns, describing what it did.
type step struct {
	name string
	do   func(r *run) string
	// dups says, per sink setup, whether the fault can make the sink's
	// at_least_once connector write a duplicate ("": it can, and the cell
	// fails without one) or why it cannot (for RESULTS.md); nil: it can in
	// every sink.
	dups func(sink string) string
	// checksItself: do fails the test when its fault hits nothing, and
	// its description says what it hit (a fault that connectd's aborts,
	// fencings and unknown outcomes may not show, such as a clean broker
	// shutdown).
	checksItself bool
}

// checksItself says whether one of sc's faults checks its own bite.
func (sc scenario) checksItself() bool {
	for _, s := range sc.faults {
		if s.checksItself {
			return true
		}
	}
	return false
}

// dupsWhy says whether sc's faults can duplicate sink's at_least_once
// output: "" if one of them can, else why none can.
func (sc scenario) dupsWhy(sink string) string {
	var why []string
	for _, s := range sc.faults {
		if s.dups == nil {
			return ""
		}
		w := s.dups(sink)
		if w == "" {
			return ""
		}
		if !slices.Contains(why, w) {
			why = append(why, w)
		}
	}
	return strings.Join(why, "; ")
}

// run is one execution of a scenario.
type run struct {
	t *testing.T
	e *env
	// ended counts connectd connections a broker ended itself during the
	// faults (a controlled shutdown's bite, see rollingRestart).
	ended int
	// stopFinished counts the open batches SIGTERM'd processes finished
	// on their way out (see instance.stop): a SIGTERM's bite.
	stopFinished int
	sc           scenario
	runID        string
	events       int
	in           string
	dir          string
	cfgPath      string
	shutdown     time.Duration
	conns        []*conn
	insts        []*instance
	prod         *producer
	watchers     map[string]*watcher
	rng          *rand.Rand

	start time.Time
	// window counts what the faults hit in every connectd's /metrics.
	window *Window

	mu       sync.Mutex
	mark     int // progress (events) when the last fault step began
	progress map[string]int
}

// runScenario runs sc over a backlog of events committed input events
// (plus what the live producer adds while the faults run) and returns one
// row per cell. Scenario-level failures (a process that will not stop, a
// pipeline that does not drain, faults that bit nothing) fail t; the rows
// carry the invariants.
func runScenario(t *testing.T, e *env, sc scenario, events int, seed uint64) []Row {
	if sc.sessionTimeout == "" {
		sc.sessionTimeout = "6s"
	}
	if sc.txnTimeout == "" {
		sc.txnTimeout = "10s"
	}
	if sc.instances == 0 {
		sc.instances = 2
	}
	r := &run{t: t, e: e, sc: sc, events: events, shutdown: 10 * time.Second,
		dir: runDir(t), start: time.Now(), watchers: map[string]*watcher{}, progress: map[string]int{},
		rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), window: NewWindow()}
	r.runID = sc.id + fmt.Sprintf("%04x", r.rng.IntN(1<<16))
	t.Logf("scenario %s (%s): run %s, seed %d, backlog %d events", sc.id, sc.name, r.runID, seed, events)
	// The env's helpers fail the test that calls them: this scenario's.
	// Failing the matrix's own test from here would panic ("subtest may
	// have called FailNow on a parent test") and hide the message's place.
	parent := e.t
	e.t = t
	defer func() { e.t = parent }()

	// The env is shared: a broker an earlier scenario left unreachable
	// would fail this one for a reason of its own, so say so here.
	if !poll(time.Minute, 500*time.Millisecond, func() bool {
		for i := range e.kafka.Nodes {
			if e.ping(i) != nil {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("a broker does not answer at the start of the scenario:\n%s", e.brokerHealth())
	}

	// Fresh topics, groups, tables and key prefixes: the env is shared.
	r.in = "in-" + r.runID
	e.createTopics(6, r.in)
	// A SIGKILLed broker re-reads every unflushed segment it holds before
	// it listens again (CI saw one take over a minute, 165 partitions at
	// a load of 10 on 2 cores): the scenarios' topics go when the
	// scenario ends, once its processes have stopped (cleanups run last
	// first), so a later scenario's restarts read only their own.
	var topics []string
	t.Cleanup(func() { e.deleteTopics(t, topics) })
	// Likewise the scenario's Redis keys: a SIGKILLed Redis replays its
	// whole AOF before it answers.
	t.Cleanup(func() { e.deleteRedisKeys(t, r.runID+":*") })
	topics = append(topics, r.in)
	var rows []Row
	for _, s := range sinkSetups {
		guarantees := []string{"exactly_once", "at_least_once"}
		if s.window {
			if !slices.Contains(sc.windowed, s.base) {
				continue
			}
			guarantees = guarantees[:1]
		}
		for _, g := range guarantees {
			abbr := map[string]string{"exactly_once": "eo", "at_least_once": "alo"}[g]
			c := &conn{name: connName(s) + "-" + abbr, setup: s, guarantee: g}
			if sc.include != nil && !sc.include(s.name, g) {
				rows = append(rows, Row{Scenario: sc.name, Sink: s.name, Guarantee: g, Skipped: sc.skipped})
				continue
			}
			c.group = "g-" + r.runID + "-" + c.name
			c.out = "out-" + r.runID + "-" + c.name
			c.dlq = "dlq-" + r.runID + "-" + c.name
			c.table = "public.ev_" + strings.ReplaceAll(r.runID+"_"+c.name, "-", "_")
			c.prefix = r.runID + ":" + c.name + ":"
			c.dir = filepath.Join(r.dir, "out-"+c.name)
			if s.kafkaOut {
				// Output partitioning differs from the input's (6).
				if s.window {
					// A window result's timestamp is its window end,
					// event time, which this input puts in 1970: with
					// time-based retention the broker deletes every
					// rolled segment of it (a broker restart rolls
					// one), and verify found the first windows gone.
					// Keep results like a table: no time retention.
					forever := "-1"
					e.createTopicsWith(4, map[string]*string{"retention.ms": &forever}, c.out)
				} else {
					e.createTopics(4, c.out)
				}
				e.createTopics(2, c.dlq)
				topics = append(topics, c.out, c.dlq)
			}
			r.conns = append(r.conns, c)
		}
	}
	r.writeConfig()
	if sc.redisFsync != "" {
		r.setRedisFsync(sc.redisFsync)
		t.Cleanup(func() { r.setRedisFsync("always") })
	}
	for _, c := range r.conns {
		if c.setup.kafkaOut {
			r.watchers[c.name] = r.startWatcher(c.out, c.dlq)
		}
	}

	// The backlog first, whole, so that the connectors start on it at full
	// speed; while the faults run the fastest connector is kept a fifth of
	// it from the end, the slowest at most all of it.
	r.prod = startProducer(t, e, r.in, "faults-input-"+r.runID, events, events/5, events, r.inputLag, sc.input)
	waitFor(t, 5*time.Minute, "the backlog", func() bool { return r.prod.count() >= events })
	r.logf("backlog of %d events written", r.prod.count())
	stopBackground := r.background()
	defer stopBackground()
	for i := range sc.instances {
		r.addInstance(startInstance(t, e, r.cfgPath, r.instanceID(i)))
	}
	r.prod.stream()

	// The window opens once every instance owns partitions of every
	// connector and every connector commits: what start-up costs is not
	// the faults' doing.
	r.waitBalanced()
	r.waitProgress(0.02)
	r.window.Open()
	for _, w := range r.watchers {
		w.openWindow()
	}
	var did []string
	for _, s := range sc.faults {
		d := s.do(r)
		r.logf("fault %s: %s", s.name, d)
		did = append(did, d)
	}
	faultsEnd := time.Now()
	for _, p := range e.allProxies() {
		p.Clear()
	}
	r.prod.finish()
	r.prod.wait(5 * time.Minute)
	r.logf("input written: %d transactions, %d of them written at once to keep a backlog", r.prod.txns, r.prod.topUps)
	bounds, committed, poison, times := inputBounds(t, e, r.in)
	r.drain(bounds, 5*time.Minute)
	recovery := time.Since(faultsEnd)
	r.scrapeAll()
	r.window.Close()
	r.logf("drained")
	for _, in := range r.insts {
		if in.Running() {
			in.stop(r.shutdown)
		}
	}
	stopBackground()
	t.Logf("input: %d committed events (%d poison, %d aborted, %d of uncertain outcome, %d transactions); drained %v after the faults",
		committed, len(poison), r.prod.aborted, r.prod.uncertain, r.prod.txns, recovery.Round(time.Millisecond))
	if committed < events {
		t.Errorf("only %d committed input events, want at least %d", committed, events)
	}
	if h, err := e.ongoingTransactions("faults-input-" + r.runID); err != nil || len(h) > 0 {
		t.Errorf("input producer transactions left open: %v %v", h, err)
	}

	r.logf("stopped")
	var scenarioBite Bite
	aloDups := 0
	mustDuplicate := false // some at_least_once cell's fault can duplicate
	for _, c := range r.conns {
		o := r.observe(c, bounds)
		o.Committed, o.Poison = committed, poison
		var bite Bite
		if !sc.inputOnly {
			bite = r.window.Bite(c.name)
			if w := r.watchers[c.name]; w != nil {
				bite.OutputAborts = w.windowAborts()
			}
		}
		if c.setup.window {
			o.Windowed, o.Windows = true, times.closedWindows()
			o.Unrestored = r.window.Unrestored(c.name)
			o.Struck = bite.Aborts + bite.Fenced + bite.Unknown + bite.OutputAborts
			o.Restores = bite.Restores
		}
		r.logf("observed %s", c.name)
		f := Check(o)
		row := Row{Scenario: sc.name, Sink: c.setup.name, Guarantee: c.guarantee, Events: committed,
			Findings: f, Recovery: recovery, Faults: strings.Join(did, "; "), FaultChecked: sc.checksItself()}
		if sc.inputOnly {
			row.Input = fmt.Sprintf("input: %d aborted, %d poison", r.prod.aborted, len(poison))
		} else {
			row.Bite = bite
			scenarioBite = scenarioBite.Add(row.Bite)
		}
		if !c.exactlyOnce() {
			row.NoDupsWhy = sc.dupsWhy(c.setup.name)
			row.MustDuplicate = !sc.inputOnly && row.NoDupsWhy == ""
			aloDups += f.Duplicates + f.ApplyCount
		}
		mustDuplicate = mustDuplicate || row.MustDuplicate
		switch {
		case !row.Pass() && c.setup.window:
			var ids []string
			for _, out := range o.Outputs {
				ids = append(ids, out.ID)
			}
			if c.setup.pgTable {
				ids = o.Scanned
			}
			t.Errorf("%s %s: %s violated:\n%s\nresults missing by input partition (the test's count): %s", c.setup.name, c.guarantee, c.guarantee,
				strings.Join(f.Details, "\n"), times.missingWindows(c.name, ids))
		case !row.Pass():
			t.Errorf("%s %s: %s violated:\n%s", c.setup.name, c.guarantee, c.guarantee, strings.Join(f.Details, "\n"))
		case !row.WindowBit():
			t.Errorf("%s %s: the faults (%s) did not bite this windowed connector: during the fault window it undid no batch and restored no state",
				c.setup.name, c.guarantee, strings.Join(did, "; "))
		case !row.Bit():
			// Whether one cell duplicates depends on where the fault
			// lands among that connector's batches; the scenario as a
			// whole must duplicate (below).
			t.Logf("%s %s: no duplicate in this cell this run, although %s can duplicate here (fault bit %s)",
				c.setup.name, c.guarantee, strings.Join(did, "; "), row.Bite)
		case c.setup.window:
			restored, aggregated := r.window.Heirs(c.name)
			t.Logf("%s %s: ok: %s; %d windows closed by the input, all checked value for value; fault bit %s; "+
				"processes started during the fault window: %d restored state, %d aggregated; watcher duplicates %d%s",
				c.setup.name, c.guarantee, o.Report, o.Windows, row.Bite, restored, aggregated, f.WatcherDuplicates, detailSuffix(f))
		default:
			t.Logf("%s %s: ok: %s; fault bit %s; order violations %d, watcher duplicates %d%s", c.setup.name, c.guarantee,
				o.Report, row.Bite, f.OrderViolations, f.WatcherDuplicates, detailSuffix(f))
		}
		rows = append(rows, row)
	}
	switch {
	case sc.inputOnly && r.prod.aborted+len(poison) == 0:
		t.Errorf("scenario %s: its input has no aborted and no poison event: nothing to bite", sc.id)
	case !sc.inputOnly && scenarioBite.Total()+aloDups+r.ended+r.stopFinished == 0:
		t.Errorf("scenario %s: the faults bit nothing: during the fault window no connector aborted a batch, was fenced, "+
			"met an unknown commit outcome or resolved a prepared transaction, no aborted transaction reached a Kafka output, "+
			"no broker ended a connection of connectd's, no stop found a batch open, and no at_least_once connector wrote a duplicate (%s)", sc.id, strings.Join(did, "; "))
	case mustDuplicate && aloDups == 0:
		t.Errorf("scenario %s: the faults did not bite: no at_least_once connector wrote a duplicate, although %s can duplicate (fault bit %s)",
			sc.id, strings.Join(did, "; "), scenarioBite)
	case sc.inputOnly:
		t.Logf("scenario %s: input: %d aborted, %d poison events", sc.id, r.prod.aborted, len(poison))
	default:
		t.Logf("scenario %s: fault bit %s, %d at_least_once duplicates", sc.id, scenarioBite, aloDups)
	}
	for _, p := range e.allProxies() {
		t.Logf("%s", p)
	}
	if sc.mutate && !t.Failed() {
		r.mutateAndRecheck(bounds, committed, poison)
	}
	return sortRows(rows)
}

// background polls every connector's progress and scrapes every
// connectd's /metrics until the returned function is called (which may be
// called again).
func (r *run) background() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			for _, c := range r.conns {
				r.progressOf(c)
			}
			select {
			case <-done:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	})
	wg.Go(func() {
		for {
			r.scrapeAll()
			select {
			case <-done:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(done); wg.Wait() })
	}
}

var scrapeClient = &http.Client{Timeout: time.Second}

// scrapeAll scrapes every running instance at once (a frozen one only
// times out).
func (r *run) scrapeAll() {
	var wg sync.WaitGroup
	for _, in := range r.instances() {
		if in.Running() {
			wg.Go(func() { r.scrape(in) })
		}
	}
	wg.Wait()
}

// scrape reads in's fault counters into the window. A failure is not an
// error: the process may be frozen, partitioned from nothing but dying,
// or gone; its previous scrape stands.
func (r *run) scrape(in *instance) {
	body, err := metricsText(in)
	if err != nil {
		return
	}
	admin := in.Admin()
	c, err := ParseCounters(body)
	if err != nil {
		r.t.Errorf("instance %s: %v", in.ID(), err)
		return
	}
	r.window.Observe(admin, c)
	for _, c := range r.conns {
		if c.setup.window {
			r.scrapeStage(admin, c)
		}
	}
}

// metricsText is in's /metrics page.
func metricsText(in *instance) (string, error) {
	admin := in.Admin()
	if admin == "" {
		return "", fmt.Errorf("instance %s has no admin address", in.ID())
	}
	resp, err := scrapeClient.Get(admin + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(body), nil
}

// scrapeStage reads the window stage counters of c from its status in
// the process at admin. Like a scrape, a failure leaves the previous one
// standing.
func (r *run) scrapeStage(admin string, c *conn) {
	resp, err := scrapeClient.Get(admin + "/connectors/" + c.name + "/status")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	var st struct {
		Window *struct {
			Restores   uint64 `json:"state_restores"`
			Windows    uint64 `json:"windows_restored"`
			Aggregated uint64 `json:"records_aggregated"`
		} `json:"window"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return
	}
	if st.Window == nil {
		r.t.Errorf("status of windowed connector %s at %s has no window section", c.name, admin)
		return
	}
	r.window.ObserveStage(admin, c.name, StageCounters{Restores: st.Window.Restores,
		RestoredWindows: st.Window.Windows, Aggregated: st.Window.Aggregated})
}

// inputLag is how many committed input events the fastest and the slowest
// connector have not committed yet (from the last progress poll).
func (r *run) inputLag() (fastest, slowest int) {
	n := r.prod.count()
	r.mu.Lock()
	defer r.mu.Unlock()
	lo, hi := -1, 0
	for _, c := range r.conns {
		p := r.progress[c.name]
		if lo < 0 || p < lo {
			lo = p
		}
		hi = max(hi, p)
	}
	return n - hi, n - max(lo, 0)
}

func (r *run) addInstance(in *instance) {
	r.mu.Lock()
	r.insts = append(r.insts, in)
	r.mu.Unlock()
}

func (r *run) instances() []*instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.insts)
}

// connName is a sink setup's connector name part.
func connName(s sinkSetup) string {
	if s.short != "" {
		return s.short
	}
	if s.name == "kafka+postgres (2PC)" {
		return "twophase"
	}
	return s.name
}

func detailSuffix(f Findings) string {
	if len(f.Details) == 0 {
		return ""
	}
	return " (" + strings.Join(f.Details, "; ") + ")"
}

// sortRows orders a scenario's rows as sinkSetups and guarantees are listed.
func sortRows(rows []Row) []Row {
	var out []Row
	for _, s := range sinkSetups {
		for _, g := range []string{"exactly_once", "at_least_once"} {
			for _, r := range rows {
				if r.Sink == s.name && r.Guarantee == g {
					out = append(out, r)
				}
			}
		}
	}
	return out
}

// runDir holds a run's config and connectd logs: FAULTS_LOG_DIR/<test>
// if set (kept for a post-mortem), else a temporary directory.
func runDir(t *testing.T) string {
	base := os.Getenv("FAULTS_LOG_DIR")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// logf logs with the time since the scenario began.
func (r *run) logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf("[%6.1fs] %s", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *run) instanceID(i int) string { return fmt.Sprintf("%s-%c", r.runID, 'a'+i) }

// writeConfig writes the daemon config every instance runs, and decodes
// each connector for the checker.
func (r *run) writeConfig() {
	r.t.Helper()
	var b strings.Builder
	quoted := make([]string, len(r.e.brokers))
	for i, br := range r.e.brokers {
		quoted[i] = fmt.Sprintf("%q", br)
	}
	fmt.Fprintf(&b, "instance_id: ${CONNECTD_INSTANCE_ID:verify}\nadmin:\n\tlisten: 127.0.0.1:0\nkafka:\n\tbrokers: [%s]\nconnectors:\n",
		strings.Join(quoted, ", "))
	for _, c := range r.conns {
		b.WriteString(r.connectorYAML(c))
	}
	yaml := strings.ReplaceAll(b.String(), "\t", "  ")
	r.cfgPath = filepath.Join(r.dir, "connectd.yaml")
	if err := os.WriteFile(r.cfgPath, []byte(yaml), 0o644); err != nil {
		r.t.Fatal(err)
	}
	cfg, err := config.Parse(r.cfgPath, []byte(yaml))
	if err != nil {
		r.t.Fatalf("config:\n%v\n%s", err, yaml)
	}
	for i, cc := range cfg.Connectors {
		spec, err := pipeline.Decode(cc)
		if err != nil {
			r.t.Fatalf("connector %s: %v", cc.Name, err)
		}
		r.conns[i].spec = spec
	}
}

func (r *run) setRedisFsync(policy string) {
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	rdb := r.e.redisClient()
	defer rdb.Close()
	if err := rdb.ConfigSet(ctx, "appendfsync", policy).Err(); err != nil {
		r.t.Errorf("redis CONFIG SET appendfsync %s: %v", policy, err)
	}
}

// events committed by c so far, or the last value read if the store
// cannot answer now (a broker or database down is what faults do).
func (r *run) progressOf(c *conn) int {
	cp, err := r.checkpoint(c)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.progress[c.name] = r.prod.below(cp)
	}
	return r.progress[c.name]
}

// minProgress is the least progress of any connector, as last polled.
func (r *run) minProgress() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := -1
	for _, c := range r.conns {
		if p := r.progress[c.name]; m < 0 || p < m {
			m = p
		}
	}
	return max(m, 0)
}

// waitProgress waits until every connector has committed another frac of
// the backlog's events since the previous call, so the next fault meets
// work in flight (the input producer keeps a backlog ahead of the slowest
// connector while the faults run); it returns the progress, in thousands
// of events, for the fault log. Running instances must stay alive.
func (r *run) waitProgress(frac float64) string {
	r.t.Helper()
	target := r.mark + int(frac*float64(r.events))
	var p int
	lastLog := time.Now()
	waitFor(r.t, 5*time.Minute, fmt.Sprintf("every connector to commit %d events", target), func() bool {
		p = r.minProgress()
		if time.Since(lastLog) > 10*time.Second {
			r.mu.Lock()
			r.logf("waiting for %d events: %v", target, r.progress)
			r.mu.Unlock()
			lastLog = time.Now()
		}
		return p >= target
	})
	r.mark = p
	r.logf("progress %d events (input %d)", p, r.prod.count())
	return fmt.Sprintf("%dk", p/1000)
}

// drain waits until every connector's checkpoint covers all committed
// input (lag 0): a failure deadline, not a performance bound.
func (r *run) drain(bounds map[connector.TopicPartition]Bound, within time.Duration) {
	r.t.Helper()
	var last string
	lastLog := time.Now()
	ok := poll(within, 300*time.Millisecond, func() bool {
		if time.Since(lastLog) > 10*time.Second {
			r.logf("draining: %s", last)
			lastLog = time.Now()
		}
		for _, in := range r.insts {
			if in.Running() {
				in.Alive()
			}
		}
		for _, c := range r.conns {
			cp, err := r.checkpoint(c)
			if err != nil {
				last = c.name + ": " + err.Error()
				return false
			}
			for tp, b := range bounds {
				if cp[tp] < b.Low {
					last = fmt.Sprintf("%s: %s at %d of %d", c.name, tp, cp[tp], b.Low)
					return false
				}
			}
		}
		return true
	})
	if !ok {
		for _, in := range r.insts {
			r.t.Logf("instance %s log tail:\n%s", in.ID(), in.LogTail(30))
		}
		r.t.Fatalf("pipeline did not drain within %v: %s", within, last)
	}
}

// running instances.
func (r *run) running() []*instance {
	var out []*instance
	for _, in := range r.instances() {
		if in.Running() {
			out = append(out, in)
		}
	}
	return out
}

// pick returns a random running instance, once every running instance
// owns partitions of every connector.
func (r *run) pick() *instance {
	r.t.Helper()
	r.waitBalanced()
	rs := r.running()
	if len(rs) == 0 {
		r.t.Fatal("no connectd instance running")
	}
	return rs[r.rng.IntN(len(rs))]
}

// pidOf matches the connections of in's current process.
func pidOf(in *instance) func(int) bool {
	pid := in.Pid()
	return func(p int) bool { return p == pid }
}
