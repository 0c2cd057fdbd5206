package postgres_test

import (
	"testing"

	"github.com/connectd/connectd/pipeline"
)

// The sink reads the stage and message of dead-lettered records from the
// headers the pipeline sets; the names are repeated there to avoid an
// import cycle, and must stay equal.
func TestDeadLetterHeaderNamesMatchThePipeline(t *testing.T) {
	if pipeline.HeaderDLQStage != "__connect.errors.stage" || pipeline.HeaderDLQMessage != "__connect.errors.exception.message" {
		t.Fatal("pipeline's dead-letter header names changed; update sink/postgres/dlq.go")
	}
}
