package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/connectd/connectd/config"
)

// errorBody is Kafka Connect's error response.
type errorBody struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

// requestError is a rejected request: its status code and the message
// clients see. Messages never contain request bodies, only positions and
// (masked) values.
type requestError struct {
	code int
	msg  string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) *requestError {
	return &requestError{code: http.StatusBadRequest, msg: msg}
}

func notFound(name string) *requestError {
	return &requestError{code: http.StatusNotFound, msg: "Connector " + name + " not found"}
}

// fail answers a failed request about connector name: Connect's status code
// and message for the sentinel errors, 400 with one line per problem for
// config errors, 500 (logged) for anything else.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, name string, err error) {
	var re *requestError
	var ce config.Errors
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &re):
		writeError(w, re.code, re.msg)
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds the limit of 1 MiB")
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "Connector "+name+" not found")
	case errors.Is(err, ErrExists):
		writeError(w, http.StatusConflict, "Connector "+name+" already exists")
	case errors.Is(err, ErrNotStopped):
		writeError(w, http.StatusBadRequest, "Connectors must be in the STOPPED state before their offsets can be modified. "+
			"This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/"+name+"/stop' endpoint")
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, "Cannot complete request for connector "+name+" momentarily: "+maskString(err.Error()))
	case errors.Is(err, ErrRefused):
		writeError(w, http.StatusBadRequest, maskString(err.Error()))
	case errors.As(err, &ce):
		writeError(w, http.StatusBadRequest, configErrorMessage(ce))
	default:
		msg := maskString(err.Error())
		s.log.Warn("admin API request failed", "method", r.Method, "path", r.URL.Path, "connector", name, "err", msg)
		writeError(w, http.StatusInternalServerError, msg)
	}
}

// configErrorMessage is every problem of a connector definition, one
// FILE:LINE:COL: message line each, with secrets a message might quote
// masked.
func configErrorMessage(ce config.Errors) string {
	lines := make([]string, len(ce))
	for i, e := range ce {
		lines[i] = maskString(e.Error())
	}
	return strings.Join(lines, "\n")
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
