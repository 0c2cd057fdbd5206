package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Binary is a Go main package built once per test process, on first use
// (so -short, which skips the tests needing it, builds nothing).
type Binary struct {
	pkg, dirPrefix string

	once sync.Once
	dir  string
	path string
	err  error
}

// NewBinary returns pkg (an import path), built into a temporary
// directory named after dirPrefix when first asked for.
func NewBinary(pkg, dirPrefix string) *Binary { return &Binary{pkg: pkg, dirPrefix: dirPrefix} }

// ConnectdBinary is cmd/connectd, for the process-level suites.
func ConnectdBinary(dirPrefix string) *Binary {
	return NewBinary("github.com/connectd/connectd/cmd/connectd", dirPrefix)
}

// Path builds the binary if it is not built yet and returns its path; a
// failed build fails t (and every later caller).
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", b.dirPrefix)
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, filepath.Base(b.pkg))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.path, b.pkg)
		cmd.WaitDelay = 10 * time.Second // the compiler children must not hold the output open forever
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Remove deletes what Path built; for TestMain, after the tests.
func (b *Binary) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
