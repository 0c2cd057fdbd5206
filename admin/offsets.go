package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/connectd/connectd/connector"
)

// Offsets is KIP-875's body of GET and PATCH /connectors/{name}/offsets, in
// the shape Kafka Connect uses for sink connectors (every connectd
// checkpoint is a position in a partition). An offset is the next one to
// read, as a consumer group's committed offset is.
type Offsets struct {
	Offsets []PartitionOffset `json:"offsets"`
}

// PartitionOffset is one partition's offset.
type PartitionOffset struct {
	Partition KafkaPartition `json:"partition"`
	Offset    KafkaOffset    `json:"offset"`
}

// KafkaPartition is Connect's {"kafka_topic", "kafka_partition"}.
type KafkaPartition struct {
	Topic     string `json:"kafka_topic"`
	Partition int32  `json:"kafka_partition"`
}

// KafkaOffset is Connect's {"kafka_offset"}.
type KafkaOffset struct {
	Offset int64 `json:"kafka_offset"`
}

// Connect's answers to a successful alter or reset.
const (
	offsetsAltered = "The offsets for this connector have been altered successfully"
	offsetsReset   = "The offsets for this connector have been reset successfully"
)

// connectorOffsets is GET /connectors/{name}/offsets: the committed
// checkpoint, partitions in order.
func (s *Server) connectorOffsets(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	cp, err := s.conns.Offsets(r.Context(), name)
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	out := Offsets{Offsets: []PartitionOffset{}}
	for _, tp := range cp.Partitions() {
		out.Offsets = append(out.Offsets, PartitionOffset{
			Partition: KafkaPartition{Topic: tp.Topic, Partition: tp.Partition},
			Offset:    KafkaOffset{Offset: cp[tp]},
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// alterOffsets is PATCH /connectors/{name}/offsets: the partitions listed
// get the offsets given, others keep theirs. Only a STOPPED connector's
// offsets change (400 otherwise); the body is checked completely before
// anything is written, so a rejected request changes nothing.
func (s *Server) alterOffsets(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	cp, err := decodeOffsets(body)
	if err != nil {
		s.fail(w, r, name, err)
		return
	}
	if err := s.conns.AlterOffsets(r.Context(), name, cp); err != nil {
		s.fail(w, r, name, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": offsetsAltered})
}

// resetOffsets is DELETE /connectors/{name}/offsets: the connector forgets
// its checkpoint and, resumed, reads its input from the start (a
// Kappa-style replay; with an idempotent sink the final state is the same).
func (s *Server) resetOffsets(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.conns.ResetOffsets(r.Context(), name); err != nil {
		s.fail(w, r, name, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": offsetsReset})
}

// offsetsRequest mirrors Offsets with pointers, so a missing member is told
// apart from a zero one.
type offsetsRequest struct {
	Offsets *[]struct {
		Partition *struct {
			Topic     *string `json:"kafka_topic"`
			Partition *int32  `json:"kafka_partition"`
		} `json:"partition"`
		Offset *struct {
			Offset *int64 `json:"kafka_offset"`
		} `json:"offset"`
	} `json:"offsets"`
}

// decodeOffsets decodes and checks a PATCH body strictly: unknown members,
// missing members, negative numbers and a partition listed twice are
// errors. A null offset, which in Connect erases one partition's offset, is
// refused: connectd resets a connector's offsets as a whole (DELETE).
func decodeOffsets(body []byte) (connector.Checkpoint, error) {
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req offsetsRequest
	if err := dec.Decode(&req); err != nil {
		return nil, typeError(body, err)
	}
	if req.Offsets == nil || len(*req.Offsets) == 0 {
		return nil, badRequest("Partitions / offsets need to be provided for an alter offsets request")
	}
	cp := connector.Checkpoint{}
	for i, po := range *req.Offsets {
		at := fmt.Sprintf("offsets[%d]", i)
		switch {
		case po.Partition == nil:
			return nil, badRequest(at + ": a partition {\"kafka_topic\", \"kafka_partition\"} is required")
		case po.Partition.Topic == nil || *po.Partition.Topic == "":
			return nil, badRequest(at + ".partition: kafka_topic is required")
		case po.Partition.Partition == nil:
			return nil, badRequest(at + ".partition: kafka_partition is required")
		case *po.Partition.Partition < 0:
			return nil, badRequest(at + ".partition: kafka_partition must not be negative")
		case po.Offset == nil:
			return nil, badRequest(at + ".offset: a null offset (erasing one partition's offset) is not supported; " +
				"DELETE /connectors/{name}/offsets resets them all")
		case po.Offset.Offset == nil:
			return nil, badRequest(at + ".offset: kafka_offset is required")
		case *po.Offset.Offset < 0:
			return nil, badRequest(at + ".offset: kafka_offset must not be negative")
		}
		tp := connector.TopicPartition{Topic: *po.Partition.Topic, Partition: *po.Partition.Partition}
		if _, dup := cp[tp]; dup {
			return nil, badRequest(fmt.Sprintf("%s: partition %s is listed twice", at, tp))
		}
		cp[tp] = *po.Offset.Offset
	}
	return cp, nil
}
