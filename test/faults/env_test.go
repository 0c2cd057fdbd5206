package faults

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"
	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/test/testenv"
)

// env is the infrastructure every scenario of a run shares: three Kafka
// brokers (RF 3, min ISR 2), PostgreSQL and Redis, each a container on one
// Docker network, each behind a fault proxy on 127.0.0.1. Scenarios isolate
// themselves with fresh topics, groups, tables and key prefixes, so one
// cluster start serves the whole matrix.
type env struct {
	t      *testing.T
	docker *client.Client

	kafka   *testenv.KafkaContainers
	kproxy  []*Proxy // by node index (node.id - 1)
	brokers []string // the proxies: what Kafka advertises and connectd uses
	adm     *kadm.Client
	kcl     *kgo.Client // adm's client, for requests to each broker

	pg       *testenv.PostgresContainer
	pgProxy  *Proxy
	pgDirect atomic.Pointer[string] // host address of the published port, which moves on restart

	redis       *testenv.RedisContainer
	redisProxy  *Proxy
	redisDirect atomic.Pointer[string]

	pidsMu sync.Mutex
	pids   map[int]string // running connectd processes: pid → instance
}

// startEnv starts the containers and proxies; everything is removed when t
// ends. It needs dockerd and the images (`make services images`), fails
// with the make target to run if they are missing, and skips with -short.
func startEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, pids: map[int]string{}}
	docker, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatalf("docker client: %v; start dockerd with `make services`", err)
	}
	t.Cleanup(func() { docker.Close() })
	e.docker = docker

	// Kafka advertises each proxy's port to host clients instead of the
	// published port, so every host connection (connectd's, after the
	// bootstrap too) goes through a proxy; the brokers reach each other on
	// the Docker network, untouched.
	var mu sync.Mutex
	proxies := map[int]*Proxy{}
	viaProxy := func(req *testcontainers.GenericContainerRequest) {
		node, _ := strconv.Atoi(req.Env["KAFKA_NODE_ID"])
		published := req.Env["KAFKA_ADVERTISED_PORT"]
		p, err := NewProxy("kafka-"+strconv.Itoa(node), func() string { return "127.0.0.1:" + published }, e.owner)
		if err != nil {
			t.Fatalf("kafka proxy: %v", err)
		}
		t.Cleanup(p.Close)
		mu.Lock()
		proxies[node] = p
		mu.Unlock()
		req.Env["KAFKA_ADVERTISED_PORT"] = strconv.Itoa(p.Port())
	}
	e.kafka = testenv.StartKafkaContainers(t, 3, viaProxy)
	for i := range e.kafka.Nodes {
		e.kproxy = append(e.kproxy, proxies[i+1])
		e.brokers = append(e.brokers, proxies[i+1].Addr())
	}
	e.kcl = testenv.KafkaClient(t, e.brokers)
	e.adm = kadm.NewClient(e.kcl)

	var wg sync.WaitGroup
	wg.Go(func() {
		e.pg = testenv.StartPostgresContainer(t, testenv.WithNetwork(e.kafka.Network, "postgres"))
	})
	wg.Go(func() {
		e.redis = testenv.StartRedisContainer(t, testenv.WithNetwork(e.kafka.Network, "redis"))
	})
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	pgAddr := hostPort(t, e.pg.DSN)
	e.pgDirect.Store(&pgAddr)
	e.redisDirect.Store(&e.redis.Addr)
	if e.pgProxy, err = NewProxy("postgres", func() string { return *e.pgDirect.Load() }, e.owner); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.pgProxy.Close)
	if e.redisProxy, err = NewProxy("redis", func() string { return *e.redisDirect.Load() }, e.owner); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.redisProxy.Close)
	t.Logf("env: kafka %v (proxies %v), postgres %s (proxy %s), redis %s (proxy %s)",
		e.kafka.Brokers, e.brokers, pgAddr, e.pgProxy.Addr(), e.redis.Addr, e.redisProxy.Addr())
	return e
}

func hostPort(t *testing.T, dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// owner resolves which connectd process opened a proxied connection.
func (e *env) owner(remote *net.TCPAddr, port int) int {
	e.pidsMu.Lock()
	pids := make([]int, 0, len(e.pids))
	for pid := range e.pids {
		pids = append(pids, pid)
	}
	e.pidsMu.Unlock()
	return OwnerPID(remote, port, pids)
}

func (e *env) addPID(pid int, instance string) {
	e.pidsMu.Lock()
	e.pids[pid] = instance
	e.pidsMu.Unlock()
}

func (e *env) removePID(pid int) {
	e.pidsMu.Lock()
	delete(e.pids, pid)
	e.pidsMu.Unlock()
}

// anyConnectd matches every connectd process (never the test's own clients).
func (e *env) anyConnectd(pid int) bool {
	e.pidsMu.Lock()
	defer e.pidsMu.Unlock()
	_, ok := e.pids[pid]
	return ok
}

// allProxies are the proxies of every service link.
func (e *env) allProxies() []*Proxy {
	return append(slices.Clone(e.kproxy), e.pgProxy, e.redisProxy)
}

// pgDSN is the DSN connectd uses: through the proxy.
func (e *env) pgDSN() string {
	return "postgres://connectd:connectd@" + e.pgProxy.Addr() + "/postgres?sslmode=disable"
}

// pgDirectDSN is the test's own DSN, straight to the published port.
func (e *env) pgDirectDSN() string {
	return "postgres://connectd:connectd@" + *e.pgDirect.Load() + "/postgres?sslmode=disable"
}

func (e *env) redisClient() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: *e.redisDirect.Load(), DialTimeout: 3 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
}

func ctxFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// --- Kafka nodes ---

func (e *env) nodeID(i int) string { return e.kafka.Nodes[i].GetContainerID() }

// killNode SIGKILLs broker i (0-based): no controlled shutdown, unflushed
// state lost as in a crash.
func (e *env) killNode(i int) {
	e.t.Helper()
	ctx, cancel := ctxFor(time.Minute)
	defer cancel()
	if _, err := e.docker.ContainerKill(ctx, e.nodeID(i), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		e.t.Fatalf("kill kafka node %d: %v", i+1, err)
	}
	e.waitStopped(e.nodeID(i), fmt.Sprintf("kafka node %d", i+1))
}

// stopNode stops broker i gracefully (SIGTERM: controlled shutdown moves
// its leaderships away first).
func (e *env) stopNode(i int) {
	e.t.Helper()
	ctx, cancel := ctxFor(2 * time.Minute)
	defer cancel()
	timeout := 60
	if _, err := e.docker.ContainerStop(ctx, e.nodeID(i), client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		e.t.Fatalf("stop kafka node %d: %v", i+1, err)
	}
}

// startNode starts broker i again (its log dir is kept in the container)
// and waits until every partition is fully replicated again, so the next
// fault never takes a second replica of the same partition.
func (e *env) startNode(i int) {
	e.t.Helper()
	ctx, cancel := ctxFor(time.Minute)
	defer cancel()
	if _, err := e.docker.ContainerStart(ctx, e.nodeID(i), client.ContainerStartOptions{}); err != nil {
		e.t.Fatalf("start kafka node %d: %v", i+1, err)
	}
	// Reachable first: a broker killed for seconds may not have been
	// fenced yet, so the ISRs can look full while it is still reading its
	// logs. Both bounds are generous: recovery after a SIGKILL took over
	// a minute in a CI run on a loaded machine.
	e.waitReachable(i, 3*time.Minute)
	e.waitReplicated(3 * time.Minute)
}

// waitReachable waits until broker i answers an ApiVersions request sent
// to it alone through its proxy, as the host's clients reach it. Full
// replication does not show this: the brokers replicate over the Docker
// network, and a restarted broker leads nothing until the next preferred
// leader election, so connectd can drain without it. A CI run's verify then
// found it unreachable minutes after its restart (connections closed at
// once, as Docker's port proxy does while nothing listens behind it); on a
// timeout the container's state and last log lines say why.
func (e *env) waitReachable(i int, within time.Duration) {
	e.t.Helper()
	var last error
	ok := poll(within, 500*time.Millisecond, func() bool {
		last = e.ping(i)
		return last == nil
	})
	if !ok {
		e.t.Fatalf("kafka node %d not reachable through %s within %v after its restart: %v\n%s", i+1, e.brokers[i], within, last, e.nodeReport(i))
	}
}

// brokerHealth says, for each broker, whether it answers through its proxy,
// with the container report of each that does not: for a failure that may
// be the environment's.
func (e *env) brokerHealth() string {
	var b strings.Builder
	for i := range e.kafka.Nodes {
		err := e.ping(i)
		if err == nil {
			fmt.Fprintf(&b, "kafka node %d (%s): answers\n", i+1, e.brokers[i])
			continue
		}
		fmt.Fprintf(&b, "kafka node %d (%s): %v\n%s\n", i+1, e.brokers[i], err, e.nodeReport(i))
	}
	return b.String()
}

// ping sends broker i alone an ApiVersions request through its proxy.
func (e *env) ping(i int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers[i]), kgo.RequestRetries(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := ctxFor(5 * time.Second)
	defer cancel()
	_, err = cl.Request(ctx, kmsg.NewPtrApiVersionsRequest())
	return err
}

// nodeReport is broker i's container state and last log lines.
func (e *env) nodeReport(i int) string {
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	var b strings.Builder
	if res, err := e.docker.ContainerInspect(ctx, e.nodeID(i), client.ContainerInspectOptions{}); err != nil {
		fmt.Fprintf(&b, "inspect: %v\n", err)
	} else if st := res.Container.State; st != nil {
		fmt.Fprintf(&b, "state: %s, running %v, exit code %d, OOM-killed %v, started %s\n", st.Status, st.Running, st.ExitCode, st.OOMKilled, st.StartedAt)
	}
	rc, err := e.kafka.Nodes[i].Logs(ctx)
	if err != nil {
		fmt.Fprintf(&b, "logs: %v\n", err)
		return b.String()
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	b.WriteString(strings.Join(lines[max(0, len(lines)-40):], "\n"))
	return b.String()
}

func (e *env) waitStopped(id, what string) {
	e.t.Helper()
	waitFor(e.t, time.Minute, what+" to stop", func() bool {
		ctx, cancel := ctxFor(10 * time.Second)
		defer cancel()
		res, err := e.docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		return err == nil && res.Container.State != nil && !res.Container.State.Running
	})
}

// waitReplicated waits until all three brokers are registered and every
// partition's ISR is its full replica set.
func (e *env) waitReplicated(within time.Duration) {
	e.t.Helper()
	var last string
	ok := poll(within, 500*time.Millisecond, func() bool {
		ctx, cancel := ctxFor(10 * time.Second)
		defer cancel()
		md, err := e.adm.Metadata(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		if len(md.Brokers) < len(e.kafka.Nodes) {
			last = fmt.Sprintf("%d brokers registered", len(md.Brokers))
			return false
		}
		for _, td := range md.Topics {
			for _, pd := range td.Partitions {
				if pd.Err != nil || len(pd.ISR) < len(pd.Replicas) || pd.Leader < 0 {
					last = fmt.Sprintf("%s/%d: leader %d, ISR %v of %v (%v)", pd.Topic, pd.Partition, pd.Leader, pd.ISR, pd.Replicas, pd.Err)
					return false
				}
			}
		}
		return true
	})
	if !ok {
		e.t.Fatalf("kafka not fully replicated within %v: %s", within, last)
	}
}

// txnCoordinator is the node index coordinating txnID's transactions.
func (e *env) txnCoordinator(txnID string) (int, error) {
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	for _, r := range e.adm.FindTxnCoordinators(ctx, txnID) {
		if r.Err != nil {
			return -1, r.Err
		}
		return int(r.NodeID) - 1, nil
	}
	return -1, fmt.Errorf("no coordinator for %s", txnID)
}

// leaderOf is the node index leading topic/partition.
func (e *env) leaderOf(topic string, partition int32) (int, error) {
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	md, err := e.adm.Metadata(ctx, topic)
	if err != nil {
		return -1, err
	}
	pd, ok := md.Topics[topic].Partitions[partition]
	if !ok || pd.Leader < 0 {
		return -1, fmt.Errorf("%s/%d has no leader", topic, partition)
	}
	return int(pd.Leader) - 1, nil
}

// createTopics creates topics with the given partitions, RF 3.
func (e *env) createTopics(partitions int32, topics ...string) {
	e.t.Helper()
	e.createTopicsWith(partitions, nil, topics...)
}

// createTopicsWith is createTopics with topic configs.
func (e *env) createTopicsWith(partitions int32, configs map[string]*string, topics ...string) {
	e.t.Helper()
	ctx, cancel := ctxFor(time.Minute)
	defer cancel()
	resp, err := e.adm.CreateTopics(ctx, partitions, 3, configs, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err == nil {
		err = testenv.AwaitTopics(ctx, e.kcl, topics, partitions)
	}
	if err != nil {
		e.t.Fatalf("create topics %v: %v", topics, err)
	}
}

// deleteTopics deletes a finished scenario's topics. A failure is logged,
// not failed: the topics only cost later broker restarts time.
func (e *env) deleteTopics(t testing.TB, topics []string) {
	ctx, cancel := ctxFor(time.Minute)
	defer cancel()
	resp, err := e.adm.DeleteTopics(ctx, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Logf("delete the scenario's topics %v: %v", topics, err)
		return
	}
	t.Logf("deleted the scenario's %d topics", len(topics))
}

// ongoingTransactions lists transactional IDs with prefix that the cluster
// reports in a state other than Empty or Complete*: not yet ended.
func (e *env) ongoingTransactions(prefix string) ([]string, error) {
	ctx, cancel := ctxFor(30 * time.Second)
	defer cancel()
	lt, err := e.adm.ListTransactions(ctx, nil, []string{"Ongoing", "PrepareCommit", "PrepareAbort", "PrepareEpochFence"})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, tx := range lt.Sorted() {
		if len(tx.TxnID) >= len(prefix) && tx.TxnID[:len(prefix)] == prefix {
			out = append(out, tx.TxnID+" ("+tx.State+")")
		}
	}
	return out, nil
}

// --- PostgreSQL and Redis containers ---

// restartPG stops PostgreSQL (gracefully, or by SIGKILL of the container:
// a crash that replays the WAL) and starts it again; its published port
// changes, and the proxy follows.
func (e *env) restartPG(crash bool) {
	e.t.Helper()
	began := time.Now()
	e.restartContainer(e.pg.GetContainerID(), "postgres", crash)
	addr := e.mapped(e.pg, "5432/tcp")
	e.pgDirect.Store(&addr)
	// A crash replays the WAL written since the last checkpoint, which
	// checkpoint_timeout and max_wal_size bound, not the scenario count.
	waitFor(e.t, 3*time.Minute, "postgres to accept queries", func() bool {
		ctx, cancel := ctxFor(5 * time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, e.pgDirectDSN())
		if err != nil {
			return false
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "SELECT 1")
		return err == nil
	})
	e.t.Logf("postgres accepted queries %v after its stop (crash %v)", time.Since(began).Round(100*time.Millisecond), crash)
}

// restartRedis SIGKILLs Redis and starts it again on its AOF. The start
// checks the whole AOF (redis-check-aof) and then replays it, so how long
// it takes grows with the AOF: deleteRedisKeys keeps that to one
// scenario's keys.
func (e *env) restartRedis() {
	e.t.Helper()
	began := time.Now()
	e.restartContainer(e.redis.GetContainerID(), "redis", true)
	addr := e.mapped(e.redis, "6379/tcp")
	e.redisDirect.Store(&addr)
	waitFor(e.t, 3*time.Minute, "redis to answer PING after loading its AOF", func() bool {
		ctx, cancel := ctxFor(5 * time.Second)
		defer cancel()
		rdb := e.redisClient()
		defer rdb.Close()
		return rdb.Ping(ctx).Err() == nil
	})
	e.t.Logf("redis answered %v after its SIGKILL (AOF checked and loaded)", time.Since(began).Round(100*time.Millisecond))
}

// deleteRedisKeys deletes a finished scenario's Redis keys (every key
// matching pattern) and rewrites the AOF so that it holds only what is
// left. Without it the keys of every earlier scenario (data, apply
// counters, audit lists: s01 leaves 1.3 million keys) stayed in the
// AOF, and a SIGKILLed Redis in a later scenario spent over two minutes
// loading them (CI, at a load of 10-15 on 2 cores). A failure is logged,
// not failed: the keys only cost later restarts time.
func (e *env) deleteRedisKeys(t testing.TB, pattern string) {
	rdb := e.redisClient()
	defer rdb.Close()
	began := time.Now()
	deleted, err := testenv.DeleteRedisKeys(rdb, pattern)
	if err == nil {
		ctx, cancel := ctxFor(2 * time.Minute)
		defer cancel()
		if err = rdb.BgRewriteAOF(ctx).Err(); err == nil {
			err = waitAOFRewritten(ctx, rdb)
		}
	}
	if err != nil {
		t.Logf("delete the scenario's Redis keys %q (%d deleted): %v", pattern, deleted, err)
		return
	}
	t.Logf("deleted the scenario's %d Redis keys and rewrote the AOF in %v", deleted, time.Since(began).Round(100*time.Millisecond))
}

// waitAOFRewritten waits until Redis has neither an AOF rewrite running
// nor one scheduled (BGREWRITEAOF schedules one while another runs).
func waitAOFRewritten(ctx context.Context, rdb *redis.Client) error {
	for {
		info, err := rdb.Info(ctx, "persistence").Result()
		if err != nil {
			return err
		}
		if strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the AOF rewrite did not end: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (e *env) restartContainer(id, what string, crash bool) {
	e.t.Helper()
	ctx, cancel := ctxFor(2 * time.Minute)
	defer cancel()
	var err error
	if crash {
		_, err = e.docker.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"})
	} else {
		timeout := 60
		_, err = e.docker.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout})
	}
	if err != nil {
		e.t.Fatalf("stop %s: %v", what, err)
	}
	e.waitStopped(id, what)
	if _, err := e.docker.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		e.t.Fatalf("start %s: %v", what, err)
	}
}

func (e *env) mapped(ctr testcontainers.Container, port string) string {
	e.t.Helper()
	var addr string
	waitFor(e.t, time.Minute, "published port "+port, func() bool {
		ctx, cancel := ctxFor(10 * time.Second)
		defer cancel()
		res, err := e.docker.ContainerInspect(ctx, ctr.GetContainerID(), client.ContainerInspectOptions{})
		if err != nil || res.Container.NetworkSettings == nil {
			return false
		}
		for p, bs := range res.Container.NetworkSettings.Ports {
			if p.String() == port && len(bs) > 0 && bs[0].HostPort != "" {
				addr = net.JoinHostPort("127.0.0.1", bs[0].HostPort)
				return true
			}
		}
		return false
	})
	return addr
}

// --- waiting ---

// poll calls cond every interval until it holds (true) or within passes.
func poll(within, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// waitFor polls cond until it holds, failing the test after within: a
// deadline for something that must happen, not a performance bound.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(within, 200*time.Millisecond, cond) {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// kgoOpts are the test's own client options.
func (e *env) client(opts ...kgo.Opt) *kgo.Client {
	return testenv.KafkaClient(e.t, e.brokers, opts...)
}
