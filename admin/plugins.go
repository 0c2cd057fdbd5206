package admin

import (
	"net/http"

	"github.com/connectd/connectd/component"
)

// pluginInfo is one entry of GET /connector-plugins: the registry's
// listing plus the daemon's version, as Kafka Connect reports a plugin's.
type pluginInfo struct {
	component.Plugin
	Version string `json:"version"`
}

// listPlugins is GET /connector-plugins: every registered source and sink.
func (s *Server) listPlugins(w http.ResponseWriter, _ *http.Request) {
	plugins := component.Plugins()
	out := make([]pluginInfo, len(plugins))
	for i, p := range plugins {
		out[i] = pluginInfo{Plugin: p, Version: s.version}
	}
	writeJSON(w, http.StatusOK, out)
}

// pluginConfig is GET /connector-plugins/{plugin}/config: the plugin's
// documented fields.
func (s *Server) pluginConfig(w http.ResponseWriter, r *http.Request) {
	p, ok := component.LookupPlugin(r.PathValue("plugin"))
	if !ok {
		writeError(w, http.StatusNotFound, "no plugin "+r.PathValue("plugin")+" (GET /connector-plugins lists them)")
		return
	}
	fields := p.Fields
	if fields == nil {
		fields = []component.Field{}
	}
	writeJSON(w, http.StatusOK, fields)
}
