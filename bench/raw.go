package bench

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"time"
)

// The raw results of a run are kept next to the report as JSON, so the
// report can be rendered again (`connectd-bench -render FILE.json`) when
// the rendering improves, without another quarter of an hour of runs.

// rawReport is what the JSON file holds.
type rawReport struct {
	Date      time.Time
	CmdLine   string
	Machine   Machine
	Versions  Versions
	LoadAtEnd string
	Options   rawOptions
	Results   []Result
	Warmup    []Result `json:",omitempty"`
	Crashes   []CrashResult
	Micro     []MicroResult
	MicroCmd  string
	Profiles  map[string]string
	Notes     []string
}

// rawOptions are the Options a report shows.
type rawOptions struct {
	Records                            int64
	Rounds, LatencyRounds, LatencyRate int
	WarmupRounds                       int `json:",omitempty"`
	LatencyDuration                    time.Duration
	WindowCloseEvery                   time.Duration `json:",omitempty"`
	CrashRate                          int
	CrashDuration, CrashEvery          time.Duration
	// The cluster and task count, which the report's header states.
	Brokers           []string `json:",omitempty"`
	ReplicationFactor int      `json:",omitempty"`
	Tasks             int      `json:",omitempty"`
	// Security describes how Kafka was reached (KafkaSecurity.Desc);
	// empty is plaintext.
	Security string `json:",omitempty"`
}

func (rep *Report) raw() rawReport {
	o := rep.Options
	return rawReport{
		Date: rep.Date, CmdLine: rep.CmdLine, Machine: rep.Machine, Versions: rep.Versions, LoadAtEnd: rep.LoadAtEnd,
		Options: rawOptions{Records: o.Records, Rounds: o.Rounds, WarmupRounds: o.WarmupRounds, LatencyRounds: o.LatencyRounds, LatencyRate: o.LatencyRate,
			LatencyDuration: o.LatencyDuration, WindowCloseEvery: o.WindowCloseEvery, CrashRate: o.CrashRate, CrashDuration: o.CrashDuration, CrashEvery: o.CrashEvery,
			Brokers: o.Brokers, ReplicationFactor: o.ReplicationFactor, Tasks: o.Tasks, Security: o.Security.Desc},
		Results: rep.Results, Warmup: rep.Warmup, Crashes: rep.Crashes, Micro: rep.Micro, MicroCmd: rep.MicroCmd, Profiles: rep.Profiles, Notes: rep.Notes,
	}
}

// fromRaw rebuilds a report, recomputing aggregates and targets.
func fromRaw(r rawReport) *Report {
	o := r.Options
	rep := &Report{
		Date: r.Date, CmdLine: r.CmdLine, Machine: r.Machine, Versions: r.Versions, LoadAtEnd: r.LoadAtEnd,
		Options: Options{Records: o.Records, Rounds: o.Rounds, WarmupRounds: o.WarmupRounds, LatencyRounds: o.LatencyRounds, LatencyRate: o.LatencyRate,
			LatencyDuration: o.LatencyDuration, WindowCloseEvery: o.WindowCloseEvery, CrashRate: o.CrashRate, CrashDuration: o.CrashDuration, CrashEvery: o.CrashEvery,
			Brokers: o.Brokers, ReplicationFactor: o.ReplicationFactor, Tasks: o.Tasks, Security: KafkaSecurity{Desc: o.Security}},
		Results: r.Results, Warmup: r.Warmup, Crashes: r.Crashes, Micro: r.Micro, MicroCmd: r.MicroCmd, Profiles: r.Profiles, Notes: r.Notes,
	}
	if rep.Profiles == nil {
		rep.Profiles = map[string]string{}
	}
	rep.Aggs = AggregateResults(rep.Results)
	rep.Targets = Targets(rep.Results, rep.Aggs, rep.Micro)
	return rep
}

// renderFile re-renders the report of a JSON file next to it.
func renderFile(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r rawReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	rep := fromRaw(r)
	return rep, writeReport(rep, strings.TrimSuffix(path, ".json"))
}

// optional carries a float that may be unknown (NaN) through JSON as null.
func optional(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// resultJSON shadows Result's NaN-able fields (JSON has no NaN).
type resultJSON struct {
	plainResult
	Commits, Aborts, CommitShare *float64
}

type plainResult Result

// MarshalJSON writes unknown figures as null.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(resultJSON{plainResult(r), optional(r.Commits), optional(r.Aborts), optional(r.CommitShare)})
}

// UnmarshalJSON reads null figures as unknown.
func (r *Result) UnmarshalJSON(b []byte) error {
	var j resultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Result(j.plainResult)
	r.Commits, r.Aborts, r.CommitShare = orNaN(j.Commits), orNaN(j.Aborts), orNaN(j.CommitShare)
	return nil
}
