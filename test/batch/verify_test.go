package batch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/connectd/connectd/verify"
)

// verifyStopped runs `connectd verify --stopped` (the binary) on connector
// name of s's config, which no process runs any more, and requires exit 0
// and a clean report (else the test fails, and goes on to compare the
// outputs). It returns the report (the CLI's JSON line).
func verifyStopped(t *testing.T, s *side, name string) verify.Report {
	t.Helper()
	within := limit(t, 5*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, connectd.Path(t), "verify", "--stopped", "-c", s.cfgPath, "--connector", name,
		"--timeout", (within - 15*time.Second).Round(time.Second).String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: connectd verify did not finish within %v\n%s", s.label, name, within, stderr.String())
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: connectd verify: %v", s.label, name, err)
	}
	var rep verify.Report
	line := strings.TrimSpace(stdout.String())
	if jerr := json.Unmarshal([]byte(line), &rep); jerr != nil {
		t.Fatalf("%s %s: connectd verify (exit %d): %v: stdout %q, stderr %s", s.label, name, code, jerr, line, stderr.String())
	}
	if code != 0 || !rep.Clean() {
		t.Errorf("%s %s: connectd verify --stopped not clean (exit %d): %s\n%s", s.label, name, code, line, stderr.String())
		return rep
	}
	t.Logf("%s %s: verify --stopped clean: %s", s.label, name, rep)
	return rep
}
