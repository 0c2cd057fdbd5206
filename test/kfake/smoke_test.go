package kfake_test

import (
	"testing"
	"time"
)

const chainYAML = `
kafka:
	brokers: [BROKERS]
connectors:
	- name: gen
		source: {type: generator, count: 5000, key_cardinality: 50}
		sink: {type: kafka, topic: raw}
	- name: copy
		source: {type: kafka, topics: [raw]}
		transforms:
			- type: filter
				expr: 'value.amount >= 0'
			- type: set
				fields: {copied: true}
		sink: {type: kafka, topic: out}
`

func TestSmokeExactlyOnceChain(t *testing.T) {
	c := newCluster(t)
	cfg := parse(t, c, chainYAML)
	startDaemon(t, cfg, "a")
	must(t, waitExpected(t, c, cfg, "gen", 5000, time.Minute), "gen")
	must(t, waitExpected(t, c, cfg, "copy", 5000, time.Minute), "copy")
}
