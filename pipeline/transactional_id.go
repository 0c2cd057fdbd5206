package pipeline

import (
	"strconv"

	"github.com/connectd/connectd/config"
)

// KafkaTransactionalIDs are the transactional IDs s's connector commits
// with when run with env, one per task, or none when it commits without
// Kafka transactions (at_least_once, or exactly_once with the checkpoint
// kept in a sink's store). They follow Build's choice of
// protocol; the admin API uses them to show a connector's open
// transactions and to refuse aborting them.
func (s *Spec) KafkaTransactionalIDs(env Env) []string {
	if s.Conf.Guarantee != config.ExactlyOnce || (len(s.Sinks) == 1 && !s.Sinks[0].Kafka) {
		return nil
	}
	env.defaults()
	ids := make([]string, max(s.Conf.Tasks, 1))
	for i := range ids {
		ids[i] = TransactionalID(s.Conf.Name, TaskInstanceID(env.InstanceID, i))
	}
	return ids
}

// TaskInstanceID is the instance ID task i of a connector runs as: the
// daemon's own for task 0 (so a connector that gains tasks keeps its
// transactional ID), "<instance>-task<i>" for the others. Everything keyed
// by instance (transactional IDs, two-phase gids and decisions) is then
// per task, as it is per process.
func TaskInstanceID(instance string, i int) string {
	if i == 0 {
		return instance
	}
	return instance + "-task" + strconv.Itoa(i)
}
