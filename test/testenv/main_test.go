package testenv

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	SetTestcontainersEnv()
	os.Exit(m.Run())
}
