package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/connectd/connectd/test/testenv"
)

func TestMain(m *testing.M) {
	testenv.SetTestcontainersEnv()
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildDir  string
	binary    string
	buildErr  error
)

// connectdBinary builds cmd/connectd once per run, on first use (the
// short mode, which skips the matrix, builds nothing), and returns its path.
func connectdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "connectd-faults-")
		if buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "connectd")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binary, "github.com/connectd/connectd/cmd/connectd")
		cmd.WaitDelay = 10 * time.Second
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build cmd/connectd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}
