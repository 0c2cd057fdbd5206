package pipeline

import "github.com/connectd/connectd/config"

// KafkaTransactionalID is the transactional ID s's connector commits with
// when run with env, or "" when it commits without Kafka transactions
// (at_least_once, or exactly_once with the checkpoint kept in a PostgreSQL
// or Redis sink). It follows Build's choice of protocol; the admin API uses
// it to show a connector's open transaction and to refuse aborting it.
func (s *Spec) KafkaTransactionalID(env Env) string {
	if s.Conf.Guarantee != config.ExactlyOnce || s.Postgres != nil || s.Redis != nil {
		return ""
	}
	env.defaults()
	return TransactionalID(s.Conf.Name, env.InstanceID)
}
