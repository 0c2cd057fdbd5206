package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// ConnectdImageTag is the tag ConnectdImage builds: the tests' own, so a
// test run never replaces an image `make image` tagged with a version.
const ConnectdImageTag = "connectd:test"

var connectdImage struct {
	once sync.Once
	err  error
}

// ConnectdImage builds connectd's container image once per test process,
// as `make image` does (a static binary, then deploy/image/build.sh, which
// pulls nothing), and returns its tag. Without the Docker engine the test
// fails saying how to start it; -short skips.
func ConnectdImage(t testing.TB) string {
	t.Helper()
	needDocker(t)
	connectdImage.once.Do(func() {
		connectdImage.err = buildConnectdImage()
	})
	if connectdImage.err != nil {
		t.Fatal(connectdImage.err)
	}
	return ConnectdImageTag
}

func buildConnectdImage() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	dir, err := os.MkdirTemp("", "connectd-image")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "connectd")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/connectd")
	build.Dir, build.Env, build.WaitDelay = root, append(os.Environ(), "CGO_ENABLED=0"), 10*time.Second
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build connectd (static): %v\n%s", err, out)
	}
	img := exec.CommandContext(ctx, "bash", filepath.Join(root, "deploy/image/build.sh"), bin, ConnectdImageTag, "test")
	if out, err := img.CombinedOutput(); err != nil {
		return fmt.Errorf("deploy/image/build.sh: %v\n%s", err, out)
	}
	return nil
}

// ConnectdContainer is a connectd started by StartConnectdContainer.
type ConnectdContainer struct {
	testcontainers.Container
	Admin string // the admin API's host address, 127.0.0.1:<published port>
}

// StartConnectdContainer runs image with cfg (a connectd YAML whose admin
// API listens on 0.0.0.0:8083) as /etc/connectd/connectd.yaml, the image's
// default command, and waits until GET /health answers. It is removed when
// the test ends.
func StartConnectdContainer(t testing.TB, image, cfg string, opts ...ContainerOption) *ConnectdContainer {
	t.Helper()
	needDocker(t)
	req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
		Image:        image,
		ExposedPorts: []string{"8083/tcp"},
		Files: []testcontainers.ContainerFile{{
			Reader: strings.NewReader(cfg), ContainerFilePath: "/etc/connectd/connectd.yaml", FileMode: 0o644,
		}},
		WaitingFor: wait.ForHTTP("/health").WithPort("8083/tcp").WithStartupTimeout(time.Minute),
	}}
	loopbackPorts(&req, nil)
	ctr := startContainer(t, req, opts)
	return &ConnectdContainer{Container: ctr, Admin: hostAddr(t, ctr, "8083/tcp")}
}
