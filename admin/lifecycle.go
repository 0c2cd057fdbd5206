package admin

import (
	"net/http"
	"strconv"

	"github.com/connectd/connectd/connector"
)

// pauseConnector is PUT /connectors/{name}/pause: 202 and no body, as in
// Connect; the state changes asynchronously (between batches).
func (s *Server) pauseConnector(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.accepted(w, r, name, s.conns.Pause(name))
}

// resumeConnector is PUT /connectors/{name}/resume: 202.
func (s *Server) resumeConnector(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.accepted(w, r, name, s.conns.Resume(name))
}

// stopConnector is KIP-875's PUT /connectors/{name}/stop: 202. A STOPPED
// connector keeps its config but holds no resources, and only then may its
// offsets change.
func (s *Server) stopConnector(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.accepted(w, r, name, s.conns.Stop(r.Context(), name))
}

func (s *Server) accepted(w http.ResponseWriter, r *http.Request, name string, err error) {
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// restartConnector is POST /connectors/{name}/restart with KIP-745's
// includeTasks and onlyFailed parameters. connectd restarts a connector
// with all its tasks together (tasks share one runner), so includeTasks
// changes nothing, and onlyFailed restarts only a FAILED connector (one
// whose task failed). As in Connect, the plain form answers 204 with no
// body, and either parameter set to true answers 202 with the status.
func (s *Server) restartConnector(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	includeTasks, err := boolParam(r, "includeTasks")
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	onlyFailed, err := boolParam(r, "onlyFailed")
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	st, ok := s.conns.Status(name)
	if !ok {
		s.fail(w, r, name, ErrNotFound)
		return
	}
	if !onlyFailed || st.State == connector.Failed {
		if err := s.conns.Restart(r.Context(), name); err != nil {
			s.fail(w, r, name, err)
			return
		}
	}
	if !includeTasks && !onlyFailed {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if now, ok := s.conns.Status(name); ok {
		st = now
	}
	writeJSON(w, http.StatusAccepted, s.status(st))
}

// boolParam is a query parameter that is true or false (default false).
func boolParam(r *http.Request, key string) (bool, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("query parameter " + key + " must be true or false")
	}
	return b, nil
}
