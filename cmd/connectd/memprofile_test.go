package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeakHeapProfile: --memprofile writes a heap profile (gzipped
// protobuf, what `go tool pprof` reads) at a clean stop, and names itself
// when its file cannot be created.
func TestPeakHeapProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heap.pprof")
	stop, err := startPeakHeapProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("heap profile is not gzipped protobuf: %d bytes starting %q", len(b), b[:min(len(b), 8)])
	}

	_, err = startPeakHeapProfile(filepath.Join(t.TempDir(), "missing", "heap.pprof"))
	if err == nil || !strings.Contains(err.Error(), "--memprofile") {
		t.Fatalf("want an error naming --memprofile, got %v", err)
	}
}
