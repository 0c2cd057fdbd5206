package faults

import (
	"os"
	"testing"

	"github.com/connectd/connectd/test/testenv"
)

func TestMain(m *testing.M) {
	testenv.SetTestcontainersEnv()
	code := m.Run()
	connectd.Remove()
	os.Exit(code)
}

// connectdBinary builds cmd/connectd once per run, on first use (the
// short mode, which skips the matrix, builds nothing), and returns its path.
func connectdBinary(t testing.TB) string {
	t.Helper()
	return connectd.Path(t)
}

// connectd is the binary under test.
var connectd = testenv.ConnectdBinary("connectd-faults-")
