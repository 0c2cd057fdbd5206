package admin

import (
	"net/http"
	"slices"
	"time"

	"github.com/connectd/connectd/connector"
)

// rootInfo is GET / in Kafka Connect: the worker's version.
type rootInfo struct {
	Version        string `json:"version"`
	Commit         string `json:"commit"`
	KafkaClusterID string `json:"kafka_cluster_id"`
}

func (s *Server) root(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, rootInfo{Version: s.version, Commit: s.commit})
}

// Expanded is one connector in GET /connectors?expand=status&expand=info:
// the members asked for.
type Expanded struct {
	Status *ConnectorStatus `json:"status,omitempty"`
	Info   *ConnectorInfo   `json:"info,omitempty"`
}

// listConnectors is GET /connectors: the names, or with ?expand=status
// and/or ?expand=info a map from name to those objects. Unknown expansions
// are ignored, as Connect does.
func (s *Server) listConnectors(w http.ResponseWriter, r *http.Request) {
	names := s.conns.Names()
	expand := r.URL.Query()["expand"]
	withStatus, withInfo := slices.Contains(expand, "status"), slices.Contains(expand, "info")
	if !withStatus && !withInfo {
		if names == nil {
			names = []string{} // [] rather than null, as Connect answers
		}
		writeJSON(w, http.StatusOK, names)
		return
	}
	out := make(map[string]Expanded, len(names))
	for _, name := range names {
		var e Expanded
		if withStatus {
			st, ok := s.conns.Status(name)
			if !ok {
				continue // deleted since Names
			}
			cs := s.status(st)
			e.Status = &cs
		}
		if withInfo {
			info, ok, err := s.info(name)
			if err != nil {
				s.fail(w, r, name, err)
				return
			}
			if !ok {
				continue
			}
			e.Info = &info
		}
		out[name] = e
	}
	writeJSON(w, http.StatusOK, out)
}

// ConnectorStatus is GET /connectors/{name}/status: Kafka Connect's shape
// (name, connector, tasks, type) plus connectd's extras. A connector runs
// as one task in this process (task 0, whose state is the connector's)
// unless its config splits it into tasks: then each is listed.
type ConnectorStatus struct {
	Name      string       `json:"name"`
	Connector StateInfo    `json:"connector"`
	Tasks     []TaskStatus `json:"tasks"`
	Type      string       `json:"type"`

	Guarantee string `json:"guarantee"`
	// Partitions are the partitions the connector's tasks in this process
	// hold now, not every partition they ever committed (see
	// connector.Assigner).
	Partitions []connector.PartitionStatus `json:"partitions"`
	LastCommit *time.Time                  `json:"last_commit"` // null until the first commit
	RecordsIn  uint64                      `json:"records_in"`
	RecordsOut uint64                      `json:"records_out"`
	Commits    uint64                      `json:"commits"`
	// Aborts counts batches not committed, by kind (abortable, fenced,
	// commit_unknown, fatal).
	Aborts map[string]uint64 `json:"aborts"`
	// LastAbort is why the last batch not committed did not (its error
	// masked like a trace), so a connector that keeps retrying says why.
	LastAbort *connector.AbortInfo `json:"last_abort,omitempty"`
	// TwoPhase, for a connector committing by two-phase commit, shows its
	// prepared transactions in doubt and what recovery did with them.
	TwoPhase *connector.TwoPhaseStatus `json:"two_phase,omitempty"`
	// Window, for a connector with a window stage, shows its counters
	// and state size.
	Window *connector.WindowStatus `json:"window,omitempty"`
}

// StateInfo is Connect's {state, worker_id, trace} object.
type StateInfo struct {
	State    string `json:"state"`
	WorkerID string `json:"worker_id"`
	// Trace is the error of a FAILED connector.
	Trace string `json:"trace,omitempty"`
	// Message says how a FINISHED connector finished (not in Connect).
	Message string `json:"message,omitempty"`
}

// TaskStatus is one element of Connect's tasks array.
type TaskStatus struct {
	ID int `json:"id"`
	StateInfo
}

func (s *Server) connectorStatus(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, ok := s.conns.Status(name)
	if !ok {
		s.fail(w, r, name, ErrNotFound)
		return
	}
	writeJSON(w, http.StatusOK, s.status(st))
}

func (s *Server) status(st connector.Status) ConnectorStatus {
	info := StateInfo{State: string(st.State), WorkerID: s.worker(), Message: st.Message}
	if st.State == connector.Failed {
		// A failure's text may quote a DSN or URL from the config.
		info.Trace = maskString(st.Error)
	}
	out := ConnectorStatus{
		Name:       st.Name,
		Connector:  info,
		Tasks:      []TaskStatus{{ID: 0, StateInfo: info}},
		Type:       s.typeOf(st.Name),
		Guarantee:  st.Guarantee,
		Partitions: st.Partitions,
		RecordsIn:  st.RecordsIn,
		RecordsOut: st.RecordsOut,
		Commits:    st.Commits,
		Aborts:     st.Aborts,
		TwoPhase:   st.TwoPhase,
		Window:     st.Window,
	}
	if st.LastAbort != nil {
		a := *st.LastAbort
		a.Error = maskString(a.Error)
		out.LastAbort = &a
	}
	if len(st.Tasks) > 0 {
		// A connector split into tasks (config key tasks) lists each.
		out.Tasks = out.Tasks[:0]
		for _, ts := range st.Tasks {
			ti := StateInfo{State: string(ts.State), WorkerID: info.WorkerID}
			if ts.State == connector.Failed {
				ti.Trace = maskString(ts.Error)
			}
			out.Tasks = append(out.Tasks, TaskStatus{ID: ts.ID, StateInfo: ti})
		}
	}
	out.Tasks = append(out.Tasks, s.memberTasks(st.Name)...)
	if out.Partitions == nil {
		out.Partitions = []connector.PartitionStatus{}
	}
	if !st.LastCommit.IsZero() {
		t := st.LastCommit.UTC()
		out.LastCommit = &t
	}
	return out
}

// memberTasks are the other members' tasks of connector name, from the
// status topic (WithClusterStatus); none for a standalone daemon. A stale
// member's tasks are UNASSIGNED: nobody knows they run, and their
// partitions move to the live members through the consumer groups.
func (s *Server) memberTasks(name string) []TaskStatus {
	if s.members == nil {
		return nil
	}
	self := s.worker()
	var out []TaskStatus
	for _, ts := range s.members.Statuses(name) {
		if ts.WorkerID == self {
			continue // this member's own tasks are the live ones above
		}
		info := StateInfo{State: ts.State, WorkerID: ts.WorkerID, Trace: maskString(ts.Trace)}
		if ts.Stale {
			info = StateInfo{State: "UNASSIGNED", WorkerID: ts.WorkerID,
				Trace: "no status from this member for 3 refresh intervals"}
		}
		out = append(out, TaskStatus{ID: ts.Task, StateInfo: info})
	}
	return out
}

// typeOf is name's Kafka Connect type: from its config, else from
// WithConfig, else "unknown".
func (s *Server) typeOf(name string) string {
	if cc, _, ok := s.conns.Config(name); ok {
		return ConnectorType(cc)
	}
	if typ, ok := s.types[name]; ok {
		return typ
	}
	return "unknown"
}
