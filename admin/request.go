package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/connectd/connectd/config"
)

// maxBodyBytes bounds every request body: a connector definition or an
// offsets list is a few KiB, and reading without a bound would let one
// client exhaust the daemon's memory.
const maxBodyBytes = 1 << 20

// bodyFile names the request body in positioned errors
// ("request body:3:14: unknown key ...").
const bodyFile = "request body"

// readBody reads the whole body, at most maxBodyBytes (a larger one fails
// with *http.MaxBytesError, answered 413).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooBig *http.MaxBytesError
	if err != nil && !errors.As(err, &tooBig) {
		return nil, badRequest("reading request body: " + err.Error())
	}
	return b, err
}

// createRequest is POST /connectors' body, {"name": ..., "config": {...}},
// with the config located in the body rather than copied, so its problems
// can be reported at their place in what the client sent.
type createRequest struct {
	name                   string
	configStart, configEnd int // body[configStart:configEnd] is the config value
}

// decodeCreateRequest decodes POST /connectors' body strictly: one JSON
// object with the members name and config and nothing else, each at most
// once. It walks the tokens itself instead of decoding into a struct so an
// unknown or repeated member is reported at its position.
func decodeCreateRequest(body []byte) (createRequest, error) {
	var req createRequest
	if err := checkJSON(body); err != nil {
		return req, err
	}
	// From here on the body is valid JSON: the walk below meets no syntax
	// errors, only members it does not accept.
	dec := json.NewDecoder(bytes.NewReader(body))
	start := skipSpace(body, 0)
	if tok, _ := dec.Token(); tok != json.Delim('{') {
		return req, badRequestAt(body, start, `the body must be a JSON object {"name": ..., "config": {...}}`)
	}
	seen := map[string]bool{}
	for dec.More() {
		at := skipSpace(body, int(dec.InputOffset()))
		tok, _ := dec.Token()
		key, _ := tok.(string) // a token in key position is always a string
		if seen[key] {
			return req, badRequestAt(body, at, fmt.Sprintf("field %q appears twice", key))
		}
		seen[key] = true
		switch key {
		case "name":
			valueAt := skipSpace(body, int(dec.InputOffset()))
			var raw json.RawMessage
			_ = dec.Decode(&raw) // valid JSON always decodes as raw
			if raw[0] != '"' {
				return req, badRequestAt(body, valueAt, `"name" must be a string`)
			}
			_ = json.Unmarshal(raw, &req.name)
		case "config":
			var raw json.RawMessage
			_ = dec.Decode(&raw)
			req.configEnd = int(dec.InputOffset())
			req.configStart = req.configEnd - len(raw)
		default:
			return req, badRequestAt(body, at, fmt.Sprintf("unknown field %q (known fields: name, config)", key))
		}
	}
	switch {
	case req.name == "":
		return req, badRequest(bodyFile + `: "name" is required`)
	case !seen["config"] || string(body[req.configStart:req.configEnd]) == "null":
		return req, badRequest(bodyFile + `: "config" is required`)
	}
	return req, nil
}

// parseConfig parses the connector definition at body[start:end] for the
// connector called name, with Kafka Connect's rule for the name inside the
// config: it must equal name if present, and is added if absent. It returns
// the definition and its raw JSON (with the name added), or every problem
// found, positioned in body.
func parseConfig(name string, body []byte, start, end int) (*config.Connector, []byte, error) {
	start = skipSpace(body, start)
	for end > start && isSpace(body[end-1]) {
		end--
	}
	raw := body[start:end]
	if len(raw) == 0 {
		return nil, nil, badRequest(bodyFile + ": a connector config (a JSON object) is required")
	}
	if err := checkJSON(body); err != nil {
		return nil, nil, err
	}
	var members map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &members) != nil {
		return nil, nil, badRequestAt(body, start, "the connector config must be a JSON object")
	}
	if n, ok := members["name"]; ok {
		var inConfig string
		if json.Unmarshal(n, &inConfig) == nil && inConfig != name {
			return nil, nil, badRequest(fmt.Sprintf("Connector name configuration (%s) doesn't match connector name in the URL (%s)",
				maskString(inConfig), name))
		}
		// A name that is not a string is left for ParseConnector to
		// report at its position.
	} else {
		raw = withName(raw, name, len(members) == 0)
	}
	// Parse the config preceded by the rest of the body blanked out, so
	// every line:column ParseConnector reports is where the client wrote
	// it. The added name goes last, so it shifts nothing.
	positioned := append(blank(body[:start]), raw...)
	c, err := config.ParseConnector(bodyFile, positioned)
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			return nil, nil, ce
		}
		return nil, nil, badRequest(maskString(err.Error()))
	}
	return c, raw, nil
}

// withName returns a copy of the JSON object obj with a "name" member added
// last.
func withName(obj []byte, name string, empty bool) []byte {
	quoted, _ := json.Marshal(name) // a string always encodes
	out := make([]byte, 0, len(obj)+len(quoted)+9)
	out = append(out, obj[:len(obj)-1]...)
	if !empty {
		out = append(out, ',')
	}
	out = append(out, `"name":`...)
	out = append(out, quoted...)
	return append(out, '}')
}

// blank replaces every character of b but line breaks with one space, so
// text after it keeps its line and column (columns count characters).
func blank(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == '\n' || r == '\r' {
			out = append(out, byte(r))
		} else {
			out = append(out, ' ')
		}
		b = b[size:]
	}
	return out
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace or a separator (',' or ':').
func skipSpace(b []byte, i int) int {
	for i < len(b) && (isSpace(b[i]) || b[i] == ',' || b[i] == ':') {
		i++
	}
	return i
}

// checkJSON rejects a body that is not one valid JSON value, with the
// position of the first bad character. (json.Unmarshal's offsets count from
// the start of the body; a json.Decoder's count from wherever it last
// stopped, so decoding happens only after this check.)
func checkJSON(body []byte) error {
	if json.Valid(body) {
		return nil
	}
	var v any
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if strings.HasPrefix(se.Error(), "unexpected end") {
			return badRequestAt(body, len(body), "invalid JSON: unexpected end of input")
		}
		return badRequestAt(body, int(se.Offset)-1, "invalid JSON: "+se.Error())
	}
	return badRequest(bodyFile + ": invalid JSON")
}

// typeError turns a decoding error of valid JSON (a value of the wrong
// type, an unknown member) into a 400.
func typeError(body []byte, err error) error {
	var te *json.UnmarshalTypeError
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if errors.As(err, &te) {
		return badRequestAt(body, int(te.Offset)-1, msg)
	}
	return badRequest(bodyFile + ": " + msg)
}

// badRequestAt is a 400 whose message is positioned at byte offset off of
// body, as FILE:LINE:COL: message like config errors.
func badRequestAt(body []byte, off int, msg string) *requestError {
	return badRequest(position(body, off).String() + ": " + msg)
}

// position is the 1-based line and column (in characters) of byte offset
// off in body.
func position(body []byte, off int) config.Position {
	off = max(0, min(off, len(body)))
	before := body[:off]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return config.Position{
		File:   bodyFile,
		Line:   bytes.Count(before, []byte{'\n'}) + 1,
		Column: utf8.RuneCount(before[lineStart:]) + 1,
	}
}
