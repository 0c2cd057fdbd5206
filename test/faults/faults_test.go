package faults

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/connectd/connectd/pipeline"
)

// The fault catalogue. Each constructor returns a step that injects its
// fault, holds it, removes it, and returns a description for the table.
// Steps pace themselves on progress (every connector must have committed a
// further share of the input first), so each one meets batches in flight.

// Which sink setups a fault can make duplicate under at_least_once, and
// why the others cannot: steps say it (step.dups), RESULTS.md prints the
// reasons, and a scenario whose fault can duplicate fails when none of
// those cells duplicated.
func writesKafka(sink string) bool { return sink == "kafka" || sink == "kafka+postgres (2PC)" }

// writesStoreOnly: sinks written without the brokers.
func writesStoreOnly(sink string) bool {
	return sink == "postgres" || sink == "redis" || sink == "files"
}

const (
	whySIGTERM = "a SIGTERM commits the open batch and its offsets before the process leaves the group, " +
		"so its partitions' next owner reads nothing twice (a stop that finds the group rebalancing aborts " +
		"its batch instead, and may then duplicate)"
	whyRandomKill = "a PostgreSQL or Redis at_least_once batch is duplicated by a crash only inside one round trip " +
		"(between the store's commit and the offset commit), which a kill at a random moment almost never hits " +
		"(the held kill of scenario 2 lands there by construction)"
	whyControlled = "a controlled shutdown moves the broker's leaderships and coordinators away before it stops: " +
		"requests go to the new leader, and an offset commit that meets a moved coordinator is retried there, " +
		"so no at_least_once batch is rewound (exactly_once transactions whose coordinator moved end unknown and count in fault bit)"
	whyNotItsStore = "the fault hits a store this sink does not write"
	whyPGRollsBack = "PostgreSQL rolls back the open transaction of a connection terminated, crashed or cut off, and at_least_once " +
		"writes again only what was not committed: a duplicate needs the fault between COMMIT and its reply " +
		"reaching connectd (the fan-out's Kafka side, written first, is duplicated)"
	whyRedisAcks = "Redis replies to a write after its fsync (appendfsync always) and a SIGKILLed Redis loses what it " +
		"had not fsynced: a kill between two batches loses nothing written; one in the middle of a batch's pipelined " +
		"chunks makes connectd write the applied ones again, which happens in some runs and not in others"
	why2PCPoint = "the process kills itself at a point of the exactly_once fan-out's first two-phase commits after a " +
		"restart, when its other connectors have barely begun: what they lose is seldom written yet (their duplicates, " +
		"if any, are counted)"
	whyChurn = "instances leave by SIGTERM, which commits the open batch before the process leaves the group, and " +
		"at_least_once commits its offsets before a rebalance takes a partition away (the exactly_once batches a " +
		"rebalance cuts are aborted instead, and count in fault bit)"
	whyIdempotent = "a Kafka at_least_once batch whose produce reply is lost is retried by the idempotent producer, " +
		"which the broker deduplicates by sequence number, and a retried offset commit changes nothing: a lost " +
		"reply rewinds no batch unless its retries fail (the fan-out's Kafka side is written again when its " +
		"PostgreSQL reply is lost)"
	whyNoFault   = "no fault: the input only"
	whyHeldKafka = "the held kill cuts the broker links first, so Kafka output is held before it is written, " +
		"not after (random kills duplicate it)"
)

// dupsPG: a PostgreSQL fault duplicates the fan-out's Kafka side.
func dupsPG(sink string) string {
	switch sink {
	case "kafka+postgres (2PC)":
		return ""
	case "postgres":
		return whyPGRollsBack
	}
	return whyNotItsStore
}

// dupsLostReplies: a lost reply duplicates what is written again after
// it, except through Kafka's idempotent producer.
func dupsLostReplies(sink string) string {
	if sink == "kafka" {
		return whyIdempotent
	}
	return ""
}

// dupsRedis: a Redis SIGKILL duplicates nothing by design.
func dupsRedis(sink string) string {
	if sink == "redis" {
		return whyRedisAcks
	}
	return whyNotItsStore
}

// sigterm: SIGTERM mid-transaction, rounds times; the process must exit 0
// within shutdown_timeout (it commits or aborts its open batch), and is
// restarted with the same instance_id.
func sigterm(rounds int) step {
	return step{name: "sigterm", do: func(r *run) string {
		var at []string
		for range rounds {
			when := r.waitProgress(0.15)
			in := r.pick()
			n := in.stop(r.shutdown)
			r.stopFinished += n
			at = append(at, fmt.Sprintf("%s@%s finishing %d open batches", in.letter(), when, n))
			in.Start()
		}
		return fmt.Sprintf("%d SIGTERM (%s)", rounds, strings.Join(at, ", "))
	}, dups: dupsNowhere(whySIGTERM)}
}

// sigkill: SIGKILL at random moments, each after another ≥20% of the input
// was committed, restarting the instance at once with its instance_id (its
// epoch bump aborts what the dead process left open).
func sigkill(rounds int) step {
	return step{name: "sigkill", do: func(r *run) string {
		var at []string
		for range rounds {
			when := r.waitProgress(0.2)
			time.Sleep(time.Duration(r.rng.IntN(300)) * time.Millisecond)
			in := r.pick()
			r.loadUp(in, func(c *conn) bool { return !c.exactlyOnce() && c.setup.kafkaOut })
			r.scrape(in) // its counters die with it
			in.kill()
			at = append(at, in.letter()+"@"+when)
			in.Start()
		}
		return fmt.Sprintf("%d SIGKILL (%s)", rounds, strings.Join(at, " "))
	}, dups: dupsIn(writesKafka, whyRandomKill)}
}

// sigstop: a process frozen past the group session timeout and the
// transaction timeout, then thawed: a zombie whose batch must not commit
// (fenced by the producer epoch, the group generation or the sink's
// claim-epoch compare-and-set). A zero freeze is the longer of the two
// timeouts plus 6s.
//
// The at_least_once connectors show that the freeze could duplicate: a
// batch the zombie wrote and did not commit is written again by the
// partitions' next owner. Frozen at a random moment, a process under load
// is most often inside its offset commits (in CI runs every connector of
// the frozen process was), which the broker then completes, and nothing
// is duplicated. So, as heldKill does, the process's broker links are cut
// first and it is frozen once each of its at_least_once PostgreSQL and
// Redis connectors has written a batch whose offset commit cannot arrive;
// the links come back (closed, so it reconnects) while it is frozen.
func sigstop(freeze time.Duration) step {
	return step{name: "sigstop", do: func(r *run) string {
		if freeze == 0 {
			s, _ := time.ParseDuration(r.sc.sessionTimeout)
			x, _ := time.ParseDuration(r.sc.txnTimeout)
			freeze = max(s, x) + 6*time.Second
		}
		when := r.waitProgress(0.15)
		in := r.pick()
		r.loadUp(in, func(c *conn) bool { return !c.exactlyOnce() })
		for _, p := range r.e.kproxy {
			p.Set(Fault{Match: pidOf(in), Blackhole: true})
		}
		held := r.waitHeld(in, heldWait)
		in.Signal(syscall.SIGSTOP)
		for _, p := range r.e.kproxy {
			p.Clear()
		}
		time.Sleep(freeze)
		in.Signal(syscall.SIGCONT)
		r.waitProgress(0.1)
		in.Alive()
		return fmt.Sprintf("SIGSTOP %s@%s for %v with %s written and not committed", in.letter(), when, freeze, strings.Join(held, ", "))
	}}
}

// brokerKill SIGKILLs the transaction coordinator of an instance's
// exactly-once Kafka connector, then the leader of an input partition,
// restarting each and waiting for full replication before the next.
func brokerKill() step {
	return step{name: "broker-kill", do: func(r *run) string {
		var did []string
		for round := range 2 {
			when := r.waitProgress(0.2)
			var node int
			var err error
			var role string
			if round == 0 {
				txid := pipeline.TransactionalID("kafka-eo", r.pick().ID())
				node, err = r.e.txnCoordinator(txid)
				role = "txn coordinator"
			} else {
				node, err = r.e.leaderOf(r.in, int32(r.rng.IntN(6)))
				role = "input leader"
			}
			if err != nil {
				r.t.Fatalf("finding the %s: %v", role, err)
			}
			r.e.killNode(node)
			time.Sleep(3 * time.Second)
			r.e.startNode(node)
			did = append(did, fmt.Sprintf("SIGKILL broker %d (%s)@%s", node+1, role, when))
		}
		return strings.Join(did, ", ")
	}}
}

// rollingRestart stops every broker in turn (controlled shutdown), starting
// it again and waiting for full replication before the next.
//
// A controlled shutdown moves leaderships and coordinators first, and
// franz-go retries what it is told to retry elsewhere, so the connectors
// may well abort nothing: the fault bites when a stopping broker ends
// connectd's connections to it while the connectors stream (each stop waits
// for progress first), which the broker's proxy counts. Every stop must end
// at least one.
func rollingRestart() step {
	return step{name: "rolling-restart", checksItself: true, do: func(r *run) string {
		var ended []string
		for i := range r.e.kafka.Nodes {
			r.waitProgress(0.1)
			before := r.e.kproxy[i].Ended(r.e.anyConnectd)
			r.e.stopNode(i)
			r.e.startNode(i)
			n := r.e.kproxy[i].Ended(r.e.anyConnectd) - before
			if n == 0 {
				r.t.Errorf("rolling restart: stopping broker %d ended no connection of connectd's", i+1)
			}
			r.ended += n
			ended = append(ended, strconv.Itoa(n))
		}
		return "rolling restart of 3 brokers (connectd connections each shutdown ended: " + strings.Join(ended, ", ") + ")"
	}, dups: dupsNowhere(whyControlled)}
}

// partition cuts one instance off from every broker (its connections and
// new ones swallowed, not refused) past the session timeout, then heals.
func partition(hold time.Duration) step {
	return step{name: "partition", do: func(r *run) string {
		return r.partition("brokers", r.e.kproxy, hold)
	}}
}

// pgPartition cuts one instance off from PostgreSQL for longer than a
// commit may take (transaction.timeout): its writes, PREPAREs and commits
// time out mid-batch with outcomes unknown, while the brokers still answer.
func pgPartition(hold time.Duration) step {
	return step{name: "pg-partition", do: func(r *run) string {
		return r.partition("PostgreSQL", []*Proxy{r.e.pgProxy}, hold)
	}, dups: dupsPG}
}

func (r *run) partition(what string, proxies []*Proxy, hold time.Duration) string {
	when := r.waitProgress(0.15)
	in := r.pick()
	f := Fault{Match: pidOf(in), Blackhole: true}
	for _, p := range proxies {
		p.Set(f)
	}
	time.Sleep(hold)
	for _, p := range proxies {
		p.Clear()
	}
	r.waitProgress(0.1)
	in.Alive()
	return fmt.Sprintf("partition %s from %s@%s for %v", in.letter(), what, when, hold)
}

// latencyDrop adds latency and drops replies on every connectd link at
// once (brokers, PostgreSQL, Redis) while the input streams: requests
// arrive, some answers never do, so commit outcomes become unknown. At once
// rather than link by link: the sinks' connectors run at different speeds,
// and only a window they all share is sure to meet each one's traffic.
func latencyDrop(hold time.Duration, latency time.Duration, drop float64) step {
	return step{name: "latency-drop", do: func(r *run) string {
		links := []struct {
			name    string
			proxies []*Proxy
		}{{"brokers", r.e.kproxy}, {"postgres", []*Proxy{r.e.pgProxy}}, {"redis", []*Proxy{r.e.redisProxy}}}
		when := r.waitProgress(0.1)
		before := map[string]int{}
		for _, l := range links {
			for _, p := range l.proxies {
				before[l.name] += p.Dropped()
				p.Set(Fault{Match: r.e.anyConnectd, Latency: latency, DropReplies: drop, DropHold: 2 * time.Second})
			}
		}
		time.Sleep(hold)
		var per []string
		for _, l := range links {
			after := 0
			for _, p := range l.proxies {
				p.Clear()
				after += p.Dropped()
			}
			per = append(per, fmt.Sprintf("%s %d", l.name, after-before[l.name]))
		}
		return fmt.Sprintf("%v latency + %.0f%% of replies dropped for %v@%s (dropped: %s)", latency, drop*100, hold, when, strings.Join(per, ", "))
	}, dups: dupsLostReplies}
}

// pgRestart terminates connectd's PostgreSQL backends, restarts the server
// cleanly, then crashes it (SIGKILL: WAL recovery) and starts it again.
func pgRestart() step {
	return step{name: "pg-restart", do: func(r *run) string {
		r.waitProgress(0.15)
		n := terminateBackends(r)
		r.waitProgress(0.15)
		r.e.restartPG(false)
		r.waitProgress(0.15)
		r.e.restartPG(true)
		return fmt.Sprintf("%d backends terminated, clean restart, crash restart", n)
	}, dups: dupsPG}
}

func terminateBackends(r *run) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, r.e.pgDirectDSN())
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// redisKill SIGKILLs Redis rounds times mid-stream and starts it on its AOF.
func redisKill(rounds int) step {
	return step{name: "redis-kill", do: func(r *run) string {
		for range rounds {
			r.waitProgress(0.2)
			r.e.restartRedis()
		}
		return fmt.Sprintf("%d Redis SIGKILL+restart", rounds)
	}, dups: dupsRedis}
}

// stall freezes one instance's broker links (both directions) longer than
// transaction.timeout but shorter than the session timeout: the member
// stays in the group while the coordinator aborts its transaction and
// bumps the epoch; its late commit must be refused.
func stall(hold time.Duration) step {
	return step{name: "txn-timeout-stall", do: func(r *run) string {
		when := r.waitProgress(0.15)
		in := r.pick()
		for _, p := range r.e.kproxy {
			p.Set(Fault{Match: pidOf(in), Blackhole: true})
		}
		time.Sleep(hold)
		for _, p := range r.e.kproxy {
			p.Clear()
		}
		r.waitProgress(0.1)
		in.Alive()
		return fmt.Sprintf("stall %s@%s for %v > transaction.timeout %s", in.letter(), when, hold, r.sc.txnTimeout)
	}}
}

// churn makes instances join and leave every few seconds (SIGTERM and
// restart), ending with every instance running.
func churn(cycles int, every time.Duration) step {
	return step{name: "churn", do: func(r *run) string {
		r.waitProgress(0.1)
		for len(r.insts) < 3 {
			r.addInstance(startInstance(r.t, r.e, r.cfgPath, r.instanceID(len(r.insts))))
		}
		moves := 0
		for i := range cycles {
			in := r.insts[1+i%2] // a stays; b and c come and go
			if in.Running() {
				in.stop(r.shutdown)
			} else {
				in.Start()
			}
			moves++
			time.Sleep(every)
		}
		for _, in := range r.insts {
			if !in.Running() {
				in.Start()
			}
		}
		return fmt.Sprintf("%d joins/leaves every %v", moves, every)
	}, dups: dupsNowhere(whyChurn)}
}

// steady lets the pipeline run without a fault while the input streams:
// the schedule of the input-only scenarios.
func steady() step {
	return step{name: "steady", do: func(r *run) string {
		r.waitProgress(0.5)
		return "none (input only)"
	}, dups: dupsNowhere(whyNoFault)}
}

// twoPhaseKill (9b) SIGKILLs an instance between the two phases of the
// Kafka + PostgreSQL fan-out, at connectd's own failure points (txn's
// CONNECTD_KILL_AT: the process sends itself SIGKILL there): after every
// participant prepared but before the Kafka transaction carrying the
// decision commits, and after that commit but before COMMIT PREPARED. The
// instance is restarted with the same instance_id; recovery must resolve
// each prepared transaction from the decision, none may stay in doubt.
func twoPhaseKill(points ...string) step {
	return step{name: "2pc-kill", do: func(r *run) string {
		var did []string
		for _, point := range points {
			when := r.waitProgress(0.08)
			in := r.pick()
			in.stop(r.shutdown)
			in.SetEnv("CONNECTD_KILL_AT=" + point)
			in.Start()
			// The point is reached by the instance's next two-phase
			// commits; input keeps streaming, so it comes.
			code := in.WaitExit(2 * time.Minute)
			in.SetEnv()
			if code != -1 {
				r.t.Fatalf("instance %s: exit code %d, want death by SIGKILL at %s\n%s", in.ID(), code, point, in.LogTail(30))
			}
			in.Start()
			did = append(did, fmt.Sprintf("%s@%s %s", in.letter(), point, when))
		}
		return "SIGKILL between the phases: " + strings.Join(did, ", ")
	}, dups: dupsNowhere(why2PCPoint)}
}
