package kafka

import (
	"strconv"

	"github.com/connectd/connectd/component"
)

// The Kafka source registers itself as `type: kafka`; see package
// component. It is the consumer-group source: the commit protocols own its
// client, so that offsets commit in the Kafka transaction or are kept per
// partition in the sink.
func init() {
	component.RegisterSource(component.Source{
		Name:          "kafka",
		Summary:       "Kafka topics read with read_committed isolation through a consumer group; splits into tasks",
		NewConfig:     func() component.SourceConfig { return new(Config) },
		ConsumerGroup: true,
		Fields: []component.Field{
			{Name: "topics", Type: "list of strings", Required: true, Description: "Topics to consume."},
			{Name: "group", Type: "string", Default: "connectd-<connector>", Description: "The consumer group."},
			{Name: "start_offset", Type: "string", Default: "earliest",
				Description: "Where a partition with no checkpoint starts: earliest, latest, or an RFC 3339 time (the first record stamped at or after it)."},
			{Name: "session_timeout", Type: "duration", Default: "45s",
				Description: "Group session timeout: how long a dead member's partitions stay unowned (a static member that restarts takes them back at once)."},
			{Name: "static_membership", Type: "bool", Default: "true",
				Description: "Every task is a static group member named by its instance ID (KIP-345); two live processes must never share an instance_id."},
			{Name: "fetch_max_bytes", Type: "int", Default: strconv.Itoa(DefaultFetchMaxBytes), Description: "Bound of one fetch response across the connector's partitions, in bytes; a connector with several tasks shares it among them (each at least fetch_max_partition_bytes)."},
			{Name: "fetch_max_partition_bytes", Type: "int", Default: strconv.Itoa(DefaultFetchMaxPartitionBytes), Description: "Bound of one partition's share of a fetch response, in bytes."},
		},
	})
}
