package admin

import (
	"encoding/json"
	"net/http"

	"github.com/connectd/connectd/config"
)

// ConnectorInfo is Kafka Connect's connector object: GET
// /connectors/{name}, and the answer to POST /connectors and PUT
// /connectors/{name}/config. Config is the definition as given (connectd's
// nested schema, not Connect's flat string map) with secrets masked.
type ConnectorInfo struct {
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config"`
	Tasks  []TaskID        `json:"tasks"`
	Type   string          `json:"type"`
}

// TaskID is Connect's {connector, task} task identifier: tasks 0 to
// tasks-1 (config key tasks, default 1).
type TaskID struct {
	Connector string `json:"connector"`
	Task      int    `json:"task"`
}

func connectorInfo(c config.Connector, raw []byte) (ConnectorInfo, error) {
	cfg, err := renderConfig(c, raw)
	if err != nil {
		return ConnectorInfo{}, err
	}
	tasks := make([]TaskID, max(c.Tasks, 1))
	for i := range tasks {
		tasks[i] = TaskID{Connector: c.Name, Task: i}
	}
	return ConnectorInfo{
		Name:   c.Name,
		Config: cfg,
		Tasks:  tasks,
		Type:   ConnectorType(c),
	}, nil
}

// info is name's ConnectorInfo; false if there is no such connector.
func (s *Server) info(name string) (ConnectorInfo, bool, error) {
	c, raw, ok := s.conns.Config(name)
	if !ok {
		return ConnectorInfo{}, false, nil
	}
	info, err := connectorInfo(c, raw)
	return info, err == nil, err
}

func (s *Server) connectorInfo(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	info, ok, err := s.info(name)
	switch {
	case err != nil:
		s.fail(w, r, name, err)
	case !ok:
		s.fail(w, r, name, ErrNotFound)
	default:
		writeJSON(w, http.StatusOK, info)
	}
}

func (s *Server) connectorConfig(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	info, ok, err := s.info(name)
	switch {
	case err != nil:
		s.fail(w, r, name, err)
	case !ok:
		s.fail(w, r, name, ErrNotFound)
	default:
		writeJSON(w, http.StatusOK, info.Config)
	}
}

// createConnector is POST /connectors: body {"name": ..., "config": {...}}.
// 201 with the new connector, 409 if the name is taken, 400 with every
// problem of the definition.
func (s *Server) createConnector(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, "", err)
		return
	}
	req, err := decodeCreateRequest(body)
	if err != nil {
		s.fail(w, r, "", err)
		return
	}
	c, raw, err := parseConfig(req.name, body, req.configStart, req.configEnd)
	if err != nil {
		s.fail(w, r, req.name, err)
		return
	}
	if err := s.conns.Create(r.Context(), *c, raw); err != nil {
		s.fail(w, r, req.name, err)
		return
	}
	s.writeInfo(w, r, http.StatusCreated, *c, raw)
}

// putConnectorConfig is PUT /connectors/{name}/config: the body is the
// config object. 201 if it created the connector, 200 if it replaced one
// (which restarts only that connector).
func (s *Server) putConnectorConfig(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	c, raw, err := parseConfig(name, body, 0, len(body))
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	created, err := s.conns.Update(r.Context(), *c, raw)
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	s.writeInfo(w, r, code, *c, raw)
}

// writeInfo answers a create or update with the connector as accepted; a
// creation carries its Location, as Connect's does.
func (s *Server) writeInfo(w http.ResponseWriter, r *http.Request, code int, c config.Connector, raw []byte) {
	info, err := connectorInfo(c, raw)
	if err != nil {
		s.fail(w, r, c.Name, err)
		return
	}
	if code == http.StatusCreated {
		w.Header().Set("Location", "/connectors/"+c.Name)
	}
	writeJSON(w, code, info)
}

// deleteConnector is DELETE /connectors/{name}: 204.
func (s *Server) deleteConnector(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.conns.Delete(r.Context(), name); err != nil {
		s.fail(w, r, name, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
