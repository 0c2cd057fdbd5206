package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"
)

// route is one operation of the API: a method on a ServeMux path pattern.
// The table below is the only place routes are registered, and the OpenAPI
// test checks it, and the mux built from it, against openapi.json.
type route struct {
	method  string
	path    string
	handler http.HandlerFunc
}

func (s *Server) routeTable() []route {
	return []route{
		{http.MethodGet, "/{$}", s.root},
		{http.MethodGet, "/connectors", s.listConnectors},
		{http.MethodPost, "/connectors", s.createConnector},
		{http.MethodGet, "/connectors/{name}", s.connectorInfo},
		{http.MethodDelete, "/connectors/{name}", s.deleteConnector},
		{http.MethodGet, "/connectors/{name}/config", s.connectorConfig},
		{http.MethodPut, "/connectors/{name}/config", s.putConnectorConfig},
		{http.MethodGet, "/connectors/{name}/status", s.connectorStatus},
		{http.MethodPut, "/connectors/{name}/pause", s.pauseConnector},
		{http.MethodPut, "/connectors/{name}/resume", s.resumeConnector},
		{http.MethodPut, "/connectors/{name}/stop", s.stopConnector},
		{http.MethodPost, "/connectors/{name}/restart", s.restartConnector},
		{http.MethodGet, "/connectors/{name}/offsets", s.connectorOffsets},
		{http.MethodPatch, "/connectors/{name}/offsets", s.alterOffsets},
		{http.MethodDelete, "/connectors/{name}/offsets", s.resetOffsets},
		{http.MethodPost, "/connectors/{name}/replay", s.startReplay},
		{http.MethodGet, "/connectors/{name}/replay", s.replayStatus},
		{http.MethodPost, "/connectors/{name}/promote", s.promoteReplay},
		{http.MethodGet, "/transactions", s.listTransactions},
		{http.MethodPost, "/transactions/{transactional_id}/abort", s.abortTransaction},
		{http.MethodGet, "/connector-plugins", s.listPlugins},
		{http.MethodGet, "/connector-plugins/{plugin}/config", s.pluginConfig},
		{http.MethodGet, "/health", s.health},
		{http.MethodGet, "/ready", s.ready},
		{http.MethodGet, "/metrics", s.serveMetrics},
		{http.MethodGet, "/openapi.json", s.openAPI},
	}
}

// routes wires the route table. Every path also gets a method-less pattern
// so a wrong verb gets a 405 in Connect's JSON error shape, with an Allow
// header, rather than net/http's plain-text one; the method patterns are
// more specific and win for the verbs they name. A GET pattern also serves
// HEAD.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	allow := map[string][]string{}
	var paths []string
	for _, rt := range s.routeTable() {
		mux.HandleFunc(rt.method+" "+rt.path, rt.handler)
		if _, ok := allow[rt.path]; !ok {
			paths = append(paths, rt.path)
		}
		allow[rt.path] = append(allow[rt.path], rt.method)
		if rt.method == http.MethodGet {
			allow[rt.path] = append(allow[rt.path], http.MethodHead)
		}
	}
	for _, p := range paths {
		mux.HandleFunc(p, methodNotAllowed(allow[p]...))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "HTTP 404 Not Found")
	})
	return mux
}

func methodNotAllowed(allow ...string) http.HandlerFunc {
	allowed := strings.Join(slices.Sorted(slices.Values(allow)), ", ")
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allowed)
		writeError(w, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
	}
}

// ProbePaths are the routes open without the token, for an orchestrator's
// liveness and readiness probes, which carry no credentials (a Kubernetes
// httpGet probe cannot read a Secret): /health reveals nothing about
// connectors and /ready only whether all of them run, not which.
var ProbePaths = []string{"/health", "/ready"}

// unauthenticated reports whether r may skip the token: a probe, or with
// WithAuth(writes) any read (GET, HEAD).
func (s *Server) unauthenticated(r *http.Request) bool {
	if slices.Contains(ProbePaths, r.URL.Path) {
		return true
	}
	return s.readsOpen && (r.Method == http.MethodGet || r.Method == http.MethodHead)
}

// authenticate requires the bearer token set by WithToken on every request
// but the probes' and, with WithAuth(writes), the reads' (unauthenticated). Without a token it returns next unchanged.
//
// The comparison is of SHA-256 digests in constant time, so neither the
// token's bytes nor its length leak through response timing.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.token == "" {
		return next
	}
	want := sha256.Sum256([]byte(s.token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.unauthenticated(r) {
			next.ServeHTTP(w, r)
			return
		}
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="connectd"`)
			writeError(w, http.StatusUnauthorized, "HTTP 401 Unauthorized: a valid bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}
