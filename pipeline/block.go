package pipeline

import (
	"fmt"
	"maps"
	"slices"

	"github.com/connectd/connectd/config"
)

// checkBounded checks a connector's bounded: block (config.Bounded)
// against what it reads: a generator is bounded by its count, so it needs
// one and takes only until: end; explicit offsets name the Kafka source's
// topics, all of them; a repartitioned window stage cannot be bounded yet
// (as with connectd run --until). Each problem names the connector and
// points into the block.
func (s *Spec) checkBounded() []error {
	b := s.Conf.Bounded
	if b == nil {
		return nil
	}
	name := s.Conf.Name
	at := func(pos config.Position, format string, args ...any) error {
		return &config.Error{Pos: pos, Msg: fmt.Sprintf("connector %s: bounded: ", name) + fmt.Sprintf(format, args...)}
	}
	var errs []error
	switch {
	case s.Source.End != nil:
		if _, err := s.Source.End(s.SourceConfig, name); err != nil {
			errs = append(errs, at(b.Pos, "%v, or remove bounded", err))
		} else if !b.Until.End {
			errs = append(errs, at(b.Pos, "a %s source is bounded by its own end alone; write bounded: {until: end}", s.Conf.Source.Type))
		}
	case s.KafkaSrc != nil && len(b.Offsets) > 0 && len(s.KafkaSrc.Topics) > 0:
		for _, topic := range slices.Sorted(maps.Keys(b.Offsets)) {
			if !slices.Contains(s.KafkaSrc.Topics, topic) {
				errs = append(errs, at(b.TopicPos[topic], "offsets: %q is not an input topic (source.topics: %v)", topic, s.KafkaSrc.Topics))
			}
		}
		for _, topic := range s.KafkaSrc.Topics {
			if _, ok := b.Offsets[topic]; !ok {
				errs = append(errs, at(b.Pos, "offsets: input topic %q is not listed; list every partition of every input topic", topic))
			}
		}
	}
	if s.Processor != nil && s.Processor.Window() != nil && s.Processor.Window().Repartition {
		errs = append(errs, at(b.Pos, "a repartitioned window stage (repartition: true) cannot be bounded yet"))
	}
	return errs
}
