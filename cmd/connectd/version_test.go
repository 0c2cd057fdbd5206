package main

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	r := connectd(t, time.Minute, nil, "version")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"connectd " + testVersion, runtime.Version(), testCommit} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("version output lacks %q:\n%s", want, r.stdout)
		}
	}
}
