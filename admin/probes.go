package admin

import (
	_ "embed"
	"net/http"
)

// health is KIP-1017's GET /health: the worker is up and answering. A
// FAILED connector does not make the worker unhealthy; its status says so.
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"status":  "healthy",
		"message": "Worker has completed startup and is ready to handle requests.",
	})
}

// ready is GET /ready, for load balancers and orchestrators: 200 when every
// connector is RUNNING (or PAUSED or STOPPED on request), else 503.
func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	if s.conns.Ready() {
		writeJSON(w, http.StatusOK, map[string]string{
			"status":  "ready",
			"message": "Every connector is running, or paused or stopped on request.",
		})
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{
		"status":  "not ready",
		"message": "Not every connector is running; GET /connectors?expand=status shows each one's state.",
	})
}

// serveMetrics is GET /metrics: the registry set by WithMetrics in
// Prometheus' text (or negotiated) format.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metricsHandler == nil {
		writeError(w, http.StatusNotFound, "metrics are not enabled on this server")
		return
	}
	s.metricsHandler.ServeHTTP(w, r)
}

// openAPIFile describes every route; a test keeps it and the routes in
// step. openAPIDoc, what GET /openapi.json serves, is it with the schemas
// of the registered sources and sinks added (see withComponentSchemas).
//
//go:embed openapi.json
var openAPIFile []byte

var openAPIDoc = withComponentSchemas(openAPIFile)

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}
