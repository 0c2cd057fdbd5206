package connector

// Dead-letter headers: the pipeline adds them to a record it dead-letters,
// and a sink that writes dead letters reads the stage and message from
// them (and adds the last two itself to a record only it could not write).
// They are Kafka Connect's names, so tools that read a Connect dead-letter
// queue read ours. They live here, below pipeline and every sink, so that
// each reads the same words without importing the other.
const (
	// HeaderDLQTopic carries the topic the record was read from.
	HeaderDLQTopic = "__connect.errors.topic"
	// HeaderDLQPartition carries that topic's partition, in decimal.
	HeaderDLQPartition = "__connect.errors.partition"
	// HeaderDLQOffset carries the record's offset there, in decimal.
	HeaderDLQOffset = "__connect.errors.offset"
	// HeaderDLQConnector carries the name of the connector that
	// dead-lettered the record.
	HeaderDLQConnector = "__connect.errors.connector.name"
	// HeaderDLQStage carries the stage that failed: "event_id",
	// "transform 0 (set)", "window", or "sink" when the sink dead-letters.
	HeaderDLQStage = "__connect.errors.stage"
	// HeaderDLQMessage carries the error, naming the record's origin.
	HeaderDLQMessage = "__connect.errors.exception.message"
)
