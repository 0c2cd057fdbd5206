package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/connectd/connectd/kappa"
)

// Replays is what a Connectors implementation offers for Kappa
// re-processing (see package kappa); the daemon implements it. Without it
// the replay routes answer 501.
type Replays interface {
	// Replay starts a shadow of connector name with the definition def
	// (nil: name's own), reading from from ("beginning" or an RFC 3339
	// time).
	Replay(ctx context.Context, name string, def []byte, from string) (kappa.Info, error)
	// ReplayStatus is the replay of name (the shadow or its live
	// connector), with its lag.
	ReplayStatus(ctx context.Context, name string) (kappa.Info, error)
	// Promote switches readers to the shadow's outputs and retires the
	// live connector; ErrConflict while the shadow has not caught up,
	// unless force.
	Promote(ctx context.Context, name string, force bool) (kappa.Info, error)
}

// replayRequest is the body of POST /connectors/{name}/replay; both members
// are optional.
type replayRequest struct {
	// Config is the shadow's definition, in the same form as PUT
	// /connectors/{name}/config; absent, the live connector's.
	Config json.RawMessage `json:"config"`
	// From is "beginning" (the default) or an RFC 3339 time.
	From string `json:"from"`
}

// startReplay is POST /connectors/{name}/replay: 201 with the replay.
func (s *Server) startReplay(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rp, ok := s.replays(w, r, name)
	if !ok {
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	var req replayRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.fail(w, r, name, badRequest("request body: "+err.Error()+` (expected {"config": {...}, "from": "beginning" or an RFC 3339 time}, both optional)`))
			return
		}
	}
	var def []byte
	if len(req.Config) > 0 && !bytes.Equal(bytes.TrimSpace(req.Config), []byte("null")) {
		def = req.Config
	}
	info, err := rp.Replay(r.Context(), name, def, req.From)
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	w.Header().Set("Location", "/connectors/"+info.Name)
	writeJSON(w, http.StatusCreated, info)
}

// replayStatus is GET /connectors/{name}/replay: the replay of name (the
// shadow, or the connector it replays) and its lag.
func (s *Server) replayStatus(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rp, ok := s.replays(w, r, name)
	if !ok {
		return
	}
	info, err := rp.ReplayStatus(r.Context(), name)
	if err != nil {
		s.failReplay(w, r, name, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// promoteReplay is POST /connectors/{name}/promote[?force=true]: 200 with
// the replay as promoted, 409 while it has not caught up.
func (s *Server) promoteReplay(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rp, ok := s.replays(w, r, name)
	if !ok {
		return
	}
	force, err := boolParam(r, "force")
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	info, err := rp.Promote(r.Context(), name, force)
	if err != nil {
		s.failReplay(w, r, name, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) replays(w http.ResponseWriter, r *http.Request, name string) (Replays, bool) {
	rp, ok := s.conns.(Replays)
	if !ok {
		s.fail(w, r, name, &requestError{code: http.StatusNotImplemented, msg: "this server cannot replay connectors"})
	}
	return rp, ok
}

// failReplay is fail, except that a connector that exists but has no
// replay gets a 404 saying so rather than "Connector X not found".
func (s *Server) failReplay(w http.ResponseWriter, r *http.Request, name string, err error) {
	if _, exists := s.conns.Status(name); exists && errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, maskString(err.Error()))
		return
	}
	s.fail(w, r, name, err)
}
