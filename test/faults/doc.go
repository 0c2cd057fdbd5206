// Package faults is connectd's failure-injection matrix: real connectd
// processes of one connector group, a three-broker Kafka cluster (replication
// factor 3, min ISR 2), PostgreSQL and Redis in containers built by `make
// images`, a schedule of faults (signals, broker and database crashes,
// network partitions, latency and lost replies, rebalance churn, aborted and
// poison input), then a drain and a check of every exactly-once invariant
// per sink and guarantee. The run writes RESULTS.md.
//
// The non-test files hold what the tests share and what can be checked on its
// own: the TCP fault proxy (proxy.go) that stands between connectd and every
// service, and the invariant checks (invariants.go) with their mutation
// tests. The matrix itself is TestMatrix (`make test-faults`); the seeded
// long run is TestSoak (`make soak`). See README.md here.
package faults
