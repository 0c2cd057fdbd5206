package deploy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/test/testenv"
)

// imageUID is the user the image runs as (deploy/image/build.sh), which
// the StatefulSet's securityContext must name.
var imageUID = func() int {
	raw, err := os.ReadFile("image/build.sh")
	if err != nil {
		panic(err)
	}
	m := regexp.MustCompile(`(?m)^UID_NONROOT=(\d+)$`).FindSubmatch(raw)
	if m == nil {
		panic("image/build.sh sets no UID_NONROOT")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}()

// imageConfig is a whole pipeline inside the container: the embedded
// broker, a generator writing 5,000 events exactly once, the admin API on
// every interface for the published port.
const imageConfig = `
admin:
  listen: 0.0.0.0:8083
kafka:
  embedded: {listen: 127.0.0.1:9092}
connectors:
  - name: gen
    commit.interval: 100ms
    source: {type: generator, count: 5000}
    sink: {type: kafka, topic: out}
`

// TestImage builds the image as `make image` does and runs connectd in it:
// a non-root user, nothing but the binary, CA certificates and the user
// files in one layer; the connector runs and commits (the metrics say how
// many records), and a SIGTERM to the container's PID 1 stops it cleanly
// (exit 0) within its grace period.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Docker engine")
	}
	tag := testenv.ConnectdImage(t)
	ctr := testenv.StartConnectdContainer(t, tag, imageConfig)
	ctx := t.Context()

	info, err := ctr.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(imageUID) + ":" + strconv.Itoa(imageUID); info.Config.User != want {
		t.Errorf("the container runs as %q, want %s (non-root)", info.Config.User, want)
	}
	if ep := info.Config.Entrypoint; len(ep) != 1 || ep[0] != "/connectd" {
		t.Errorf("entrypoint %v, want [/connectd]", ep)
	}

	// The generator's 5,000 events are committed: records out reach it.
	var last string
	deadline := time.Now().Add(time.Minute)
	for {
		out := metric(t, ctr.Admin, `connectd_records_out_total{connector="gen"}`)
		if out >= 5000 {
			t.Logf("records out: %v", out)
			break
		}
		last = strconv.FormatFloat(out, 'f', -1, 64)
		if time.Now().After(deadline) {
			t.Fatalf("the connector in the container committed %s of 5000 records within a minute", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	status := get(t, "http://"+ctr.Admin+"/connectors/gen/status")
	var st struct {
		Connector struct{ State string } `json:"connector"`
	}
	if err := json.Unmarshal([]byte(status), &st); err != nil || st.Connector.State != "RUNNING" {
		t.Fatalf("status %s: %v", status, err)
	}

	// docker stop sends SIGTERM to PID 1, connectd itself.
	timeout := 20 * time.Second
	if err := ctr.Stop(ctx, &timeout); err != nil {
		t.Fatal(err)
	}
	if info, err = ctr.Inspect(ctx); err != nil {
		t.Fatal(err)
	}
	logs := containerLogs(ctx, t, ctr)
	if info.State.ExitCode != 0 || !strings.Contains(logs, "connector stopped") {
		t.Fatalf("after SIGTERM: exit code %d, want 0 and the connector's \"connector stopped\"\n%s", info.State.ExitCode, logs)
	}
}

// metric reads one sample of the admin API's /metrics (0 if absent).
func metric(t *testing.T, admin, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(get(t, "http://"+admin+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func containerLogs(ctx context.Context, t *testing.T, ctr *testenv.ConnectdContainer) string {
	t.Helper()
	r, err := ctr.Logs(ctx)
	if err != nil {
		return err.Error()
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}
