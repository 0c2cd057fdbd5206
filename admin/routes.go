package admin

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/connectd/connectd/connector"
)

// routes wires Kafka Connect's paths. Every path also has a method-less
// pattern so a wrong verb gets a 405 in Connect's JSON error shape rather
// than net/http's plain-text one; the method patterns are more specific and
// win for the verbs they name.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	get := func(path string, h http.HandlerFunc) {
		mux.HandleFunc("GET "+path, h)
		mux.HandleFunc(path, methodNotAllowed(http.MethodGet, http.MethodHead))
	}
	get("/{$}", s.root)
	get("/connectors", s.listConnectors)
	get("/connectors/{name}/status", s.connectorStatus)
	get("/health", s.health)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "HTTP 404 Not Found")
	})
	return mux
}

// rootInfo is GET / in Kafka Connect: the worker's version.
type rootInfo struct {
	Version        string `json:"version"`
	Commit         string `json:"commit"`
	KafkaClusterID string `json:"kafka_cluster_id"`
}

func (s *Server) root(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, rootInfo{Version: s.version, Commit: s.commit})
}

func (s *Server) listConnectors(w http.ResponseWriter, _ *http.Request) {
	names := s.conns.Names()
	if names == nil {
		names = []string{} // [] rather than null, as Connect answers
	}
	writeJSON(w, http.StatusOK, names)
}

// ConnectorStatus is GET /connectors/{name}/status: Kafka Connect's shape
// (name, connector, tasks, type) plus connectd's extras. connectd runs each
// connector as one task in this process, so there is always task 0 and its
// state is the connector's.
type ConnectorStatus struct {
	Name      string       `json:"name"`
	Connector StateInfo    `json:"connector"`
	Tasks     []TaskStatus `json:"tasks"`
	Type      string       `json:"type"`

	Guarantee  string                      `json:"guarantee"`
	Partitions []connector.PartitionStatus `json:"partitions"`
	LastCommit *time.Time                  `json:"last_commit"` // null until the first commit
	RecordsIn  uint64                      `json:"records_in"`
	RecordsOut uint64                      `json:"records_out"`
	Commits    uint64                      `json:"commits"`
	// Aborts counts batches not committed, by kind (abortable, fenced,
	// commit_unknown, fatal).
	Aborts map[string]uint64 `json:"aborts"`
}

// StateInfo is Connect's {state, worker_id, trace} object.
type StateInfo struct {
	State    string `json:"state"`
	WorkerID string `json:"worker_id"`
	// Trace is the error of a FAILED connector.
	Trace string `json:"trace,omitempty"`
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
		writeError(w, http.StatusNotFound, "Connector "+name+" not found")
		return
	}
	writeJSON(w, http.StatusOK, s.status(st))
}

func (s *Server) status(st connector.Status) ConnectorStatus {
	info := StateInfo{State: string(st.State), WorkerID: s.worker()}
	if st.State == connector.Failed {
		info.Trace = st.Error
	}
	typ, ok := s.types[st.Name]
	if !ok {
		typ = "unknown"
	}
	out := ConnectorStatus{
		Name:       st.Name,
		Connector:  info,
		Tasks:      []TaskStatus{{ID: 0, StateInfo: info}},
		Type:       typ,
		Guarantee:  st.Guarantee,
		Partitions: st.Partitions,
		RecordsIn:  st.RecordsIn,
		RecordsOut: st.RecordsOut,
		Commits:    st.Commits,
		Aborts:     st.Aborts,
	}
	if out.Partitions == nil {
		out.Partitions = []connector.PartitionStatus{}
	}
	if !st.LastCommit.IsZero() {
		t := st.LastCommit.UTC()
		out.LastCommit = &t
	}
	return out
}

// health is KIP-1017's GET /health: the worker is up and answering. A
// FAILED connector does not make the worker unhealthy; its status says so.
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"status":  "healthy",
		"message": "Worker has completed startup and is ready to handle requests.",
	})
}

// errorBody is Kafka Connect's error response.
type errorBody struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

func methodNotAllowed(allow ...string) http.HandlerFunc {
	allowed := strings.Join(allow, ", ")
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allowed)
		writeError(w, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{ErrorCode: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only programming errors (an unencodable type) get here.
		http.Error(w, `{"error_code":500,"message":"encoding response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
