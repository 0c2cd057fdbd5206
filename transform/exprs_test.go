package transform

import (
	"fmt"
	"strings"
	"testing"

	"github.com/connectd/connectd/connector"
)

// TestExprsFieldPathsAgreeWithTheGeneralWay: field paths read by the fast
// path give what the expression VM gives on the decoded value.
func TestExprsFieldPathsAgreeWithTheGeneralWay(t *testing.T) {
	paths := []string{"value.n", "value.f", "value.big", "value.s", "value.esc", "value.b", "value.z", "value.missing", "value.o.id", "value.e"}
	var fast, general Exprs
	for _, p := range paths {
		if _, err := fast.Add("f", p); err != nil {
			t.Fatal(err)
		}
		if _, err := general.Add("f", p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := general.Add("f", "value.n + 0"); err != nil { // forces the general way
		t.Fatal(err)
	}
	if fast.general || !general.general {
		t.Fatal("field paths must take the fast way, an arithmetic expression the general one")
	}
	for _, v := range []string{
		`{"n":12,"f":1.5,"big":12345678901234567890,"s":"x","esc":"a\"b\u00e9","b":true,"z":null,"o":{"id":"c-1"},"e":1e3}`,
		`{"n":-3,"f":0.1,"s":"","b":false,"o":{"id":7}}`,
	} {
		r := &connector.Record{Value: []byte(v)}
		a, b := make([]any, fast.Len()), make([]any, general.Len())
		if err := fast.Eval(r, a); err != nil {
			t.Fatal(err)
		}
		if err := general.Eval(r, b); err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if fmt.Sprintf("%T %v", a[i], a[i]) != fmt.Sprintf("%T %v", b[i], b[i]) {
				t.Errorf("%s on %s: fast %T %v, general %T %v", paths[i], v, a[i], a[i], b[i], b[i])
			}
		}
	}
	// Not JSON: the general way's error, which says so.
	r := &connector.Record{Value: []byte("not json")}
	if err := fast.Eval(r, make([]any, fast.Len())); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("a value that is not JSON: %v, want the general way's error", err)
	}
}
