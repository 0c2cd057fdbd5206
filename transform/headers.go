package transform

import (
	"fmt"
	"sort"

	"github.com/connectd/connectd/connector"
)

func init() {
	Register(Spec{
		Name:    "headers",
		Summary: "Set and remove record headers.",
		Fields: []Field{
			{Name: "set", Type: "map[string]string", Description: "Headers to set; each replaces every existing header of that name."},
			{Name: "remove", Type: "list of strings", Description: "Header names to remove; a missing header is not an error."},
		},
		Build: buildHeaders,
	})
}

type headersConfig struct {
	Set    map[string]string `yaml:"set"`
	Remove []string          `yaml:"remove"`
}

type headerEdit struct {
	setKeys []string // sorted, so headers are appended in the same order every time
	setVals [][]byte
	remove  []string
}

func buildHeaders(decode func(any) error) (Transform, error) {
	var c headersConfig
	if err := decode(&c); err != nil {
		return nil, err
	}
	if len(c.Set) == 0 && len(c.Remove) == 0 {
		return nil, fmt.Errorf("set or remove is required")
	}
	h := headerEdit{remove: c.Remove}
	for k := range c.Set {
		h.setKeys = append(h.setKeys, k)
	}
	sort.Strings(h.setKeys)
	for _, k := range h.setKeys {
		h.setVals = append(h.setVals, []byte(c.Set[k]))
	}
	for _, k := range c.Remove {
		if _, both := c.Set[k]; both {
			return nil, fieldErr("remove", fmt.Errorf("header %q is both set and removed", k))
		}
	}
	return h, nil
}

func (headerEdit) Name() string { return "headers" }

func (h headerEdit) Apply(in *connector.Record) ([]*connector.Record, error) {
	r := in.Clone()
	for _, k := range h.remove {
		r.RemoveHeader(k)
	}
	for i, k := range h.setKeys {
		// Copy so no two records share a header value's backing array.
		r.SetHeader(k, append([]byte(nil), h.setVals[i]...))
	}
	return []*connector.Record{r}, nil
}
