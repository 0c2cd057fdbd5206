package verify

import (
	"encoding/json"
	"testing"
)

// apply_count violations make a report unclean and appear in its JSON only
// when there are any, so a clean report keeps its five-field shape.
func TestApplyCountViolations(t *testing.T) {
	rep := Compare([]string{"t:a", "t:b"}, []string{"t:a", "t:b"})
	line, _ := json.Marshal(rep)
	if want := `{"expected":2,"actual":2,"duplicates":0,"missing":0,"unexpected":0}`; string(line) != want || !rep.Clean() {
		t.Fatalf("clean report %s, want %s", line, want)
	}
	rep.ApplyCountViolations = 3
	line, _ = json.Marshal(rep)
	if rep.Clean() || string(line) != `{"expected":2,"actual":2,"duplicates":0,"missing":0,"unexpected":0,"apply_count_violations":3}` {
		t.Fatalf("report with violations: clean=%v %s", rep.Clean(), line)
	}
}
