package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/goccy/go-yaml"

	"github.com/connectd/connectd/config"
)

// renderConfig is a connector definition as responses show it: JSON, members
// in the order written, a "name" member first if it had none, and secrets
// masked. It shows raw, the definition as given (YAML is converted); when
// there is none (a connector of the config file, for which the daemon keeps
// only the parsed form) it shows c with its defaults filled in, components
// as written.
func renderConfig(c config.Connector, raw []byte) (json.RawMessage, error) {
	name := c.Name
	if raw == nil {
		fromConfig, err := yaml.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("rendering the config of connector %s: %w", name, err)
		}
		raw = fromConfig
	}
	if !json.Valid(raw) {
		converted, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("rendering the config of connector %s: %w", name, err)
		}
		raw = converted
	}
	v, err := decodeOrdered(raw)
	if err != nil {
		return nil, fmt.Errorf("rendering the config of connector %s: %w", name, err)
	}
	obj, ok := v.(object)
	if !ok {
		return nil, fmt.Errorf("rendering the config of connector %s: not an object", name)
	}
	if !obj.has("name") {
		obj = append(object{{Key: "name", Value: name}}, obj...)
	}
	return json.Marshal(mask(obj))
}

// object is a JSON object that keeps its members in the order written, so a
// config reads back the way the operator wrote it.
type object []member

type member struct {
	Key   string
	Value any // object, []any, string, json.Number, bool or nil
}

func (o object) has(key string) bool {
	for _, m := range o {
		if m.Key == key {
			return true
		}
	}
	return false
}

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(m.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.Value)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// decodeOrdered decodes one JSON value, objects as object.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := object{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			key, _ := k.(string)
			obj = append(obj, member{Key: key, Value: v})
		}
		_, err := dec.Token()
		return obj, err
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token()
		return arr, err
	}
	return tok, nil
}
