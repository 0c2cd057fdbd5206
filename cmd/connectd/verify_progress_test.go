package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/connectd/connectd/test/e2e"
)

// verify's progress on a stderr that is not a terminal: plain lines, each
// with the records read of those known so far, the last one with all of
// them read (verifyProgressEvery set to 0 prints every report; the
// default's first line would come after 5 s, so a quick check prints
// none). The report on stdout is unchanged: one JSON line.
func TestVerifyProgressLines(t *testing.T) {
	c := newCluster(t)
	e2e.Produce(t, c, "in", 0, 3000)
	path := writeConfig(t, t.TempDir(), "bounded.yaml", strings.ReplaceAll(boundedYAML, "BROKERS", strings.Join(c.ListenAddrs(), ",")))
	if code, sum := runBounded(t, path); code != 0 {
		t.Fatalf("bounded run: exit %d, %+v", code, sum)
	}

	every := verifyProgressEvery
	verifyProgressEvery = 0
	t.Cleanup(func() { verifyProgressEvery = every })
	var stdout, stderr bytes.Buffer
	if code := verifyCmd([]string{"-c", path, "--connector", "copy", "--stopped"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if strings.Count(stdout.String(), "\n") != 1 || !strings.Contains(stdout.String(), `"expected":3000`) {
		t.Fatalf("stdout = %q, want one report line of 3000 records", stdout.String())
	}
	line := regexp.MustCompile(`^connectd verify: connector copy: (\d+) of (\d+) records read \(input and output, as far as known\), \d+ records/s$`)
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	var read, total int64
	for _, l := range lines {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("stderr line %q is not a progress line:\n%s", l, stderr.String())
		}
		r, _ := strconv.ParseInt(m[1], 10, 64)
		n, _ := strconv.ParseInt(m[2], 10, 64)
		if r < read || n < total || r > n {
			t.Fatalf("progress went from %d of %d to %d of %d:\n%s", read, total, r, n, stderr.String())
		}
		read, total = r, n
	}
	// The input (3,000 records) and the output (3,000 and its
	// transaction markers), in offsets.
	if len(lines) < 2 || read != total || total <= 6000 {
		t.Fatalf("%d progress lines ending at %d of %d; want several, ending with all of more than 6,000 read:\n%s", len(lines), read, total, stderr.String())
	}
	t.Logf("%d progress lines, the last: %s", len(lines), lines[len(lines)-1])

}
