package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// SetTestcontainersEnv sets what testcontainers-go needs on these machines,
// unless already set: TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 (the machine has
// /.dockerenv, so testcontainers would otherwise dial the VM's gateway) and
// TESTCONTAINERS_RYUK_DISABLED=true (the reaper image cannot be pulled; the
// helpers here clean up with t.Cleanup). Call it from TestMain, before any
// container starts; the Start*Container helpers call it too.
func SetTestcontainersEnv() {
	for k, v := range map[string]string{
		"TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
		"TESTCONTAINERS_RYUK_DISABLED": "true",
	} {
		if os.Getenv(k) == "" {
			_ = os.Setenv(k, v)
		}
	}
}

// ContainerOption adjusts a container the Start*Container helpers create.
type ContainerOption func(*testcontainers.GenericContainerRequest)

// WithNetwork attaches the container to nw (in addition to any network the
// helper creates), reachable there under the given aliases.
func WithNetwork(nw *testcontainers.DockerNetwork, aliases ...string) ContainerOption {
	return func(req *testcontainers.GenericContainerRequest) {
		_ = network.WithNetwork(aliases, nw).Customize(req)
	}
}

// WithCmd replaces the image's command; for connectd-redis that is the
// arguments after its fixed ones, e.g. --appendfsync everysec.
func WithCmd(cmd ...string) ContainerOption {
	return func(req *testcontainers.GenericContainerRequest) { req.Cmd = cmd }
}

// WithEnv adds environment variables to the container.
func WithEnv(env map[string]string) ContainerOption {
	return func(req *testcontainers.GenericContainerRequest) {
		if req.Env == nil {
			req.Env = map[string]string{}
		}
		for k, v := range env {
			req.Env[k] = v
		}
	}
}

// needDocker skips under -short, fails if the engine does not answer or the
// images are not built, and returns the image tags.
func needDocker(t testing.TB) Images {
	t.Helper()
	needService(t, "Docker and the test images")
	SetTestcontainersEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := client.New(client.FromEnv)
	if err == nil {
		defer cli.Close()
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	}
	if err != nil {
		missing(t, "the Docker engine", "DOCKER_HOST (default unix:///var/run/docker.sock)", "services", err)
	}
	img, err := LoadImages()
	if err != nil {
		t.Fatalf("test images: %v", err)
	}
	for _, tag := range []string{img.Kafka, img.Postgres, img.Redis} {
		if _, err := cli.ImageInspect(ctx, tag); err != nil {
			t.Fatalf("image %s (from %s) is not in the Docker engine: %v; run `make images`", tag, ImagesFile(), err)
		}
	}
	return img
}

// Containers are removed when the test ends without a graceful stop
// (testcontainers.StopTimeout(0)): their state is thrown away anyway.

// loopbackPorts binds each exposed port to 127.0.0.1 only (an ephemeral host
// port unless fixed says otherwise), so nothing listens beyond loopback.
func loopbackPorts(req *testcontainers.GenericContainerRequest, fixed map[string]int) {
	prev := req.HostConfigModifier
	req.HostConfigModifier = func(hc *container.HostConfig) {
		if prev != nil {
			prev(hc)
		}
		if hc.PortBindings == nil {
			hc.PortBindings = mobynet.PortMap{}
		}
		for _, spec := range req.ExposedPorts {
			p, err := mobynet.ParsePort(spec)
			if err != nil {
				continue
			}
			host := ""
			if n, ok := fixed[spec]; ok {
				host = strconv.Itoa(n)
			}
			hc.PortBindings[p] = []mobynet.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: host}}
		}
	}
}

func startContainer(t testing.TB, req testcontainers.GenericContainerRequest, opts []ContainerOption) testcontainers.Container {
	t.Helper()
	for _, o := range opts {
		o(&req)
	}
	req.Started = true
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctr, err := testcontainers.GenericContainer(ctx, req)
	testcontainers.CleanupContainer(t, ctr, testcontainers.StopTimeout(0))
	if err != nil {
		t.Fatalf("start container from %s: %v", req.Image, err)
	}
	return ctr
}

func hostAddr(t testing.TB, ctr testcontainers.Container, port string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := ctr.MappedPort(ctx, port)
	if err != nil {
		t.Fatalf("mapped port %s: %v", port, err)
	}
	return net.JoinHostPort("127.0.0.1", p.Port())
}

// RedisContainer is a Redis started by StartRedisContainer.
type RedisContainer struct {
	testcontainers.Container
	Addr string // host address, 127.0.0.1:<published port>
}

// StartRedisContainer starts Redis 7 (appendonly yes, appendfsync always) from
// the image `make images` builds; it is removed when the test ends.
func StartRedisContainer(t testing.TB, opts ...ContainerOption) *RedisContainer {
	t.Helper()
	img := needDocker(t)
	req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
		Image:        img.Redis,
		ExposedPorts: []string{"6379/tcp"},
		WaitingFor:   wait.ForLog("Ready to accept connections").WithStartupTimeout(time.Minute),
	}}
	loopbackPorts(&req, nil)
	ctr := startContainer(t, req, opts)
	return &RedisContainer{Container: ctr, Addr: hostAddr(t, ctr, "6379/tcp")}
}

// PostgresContainer is a PostgreSQL started by StartPostgresContainer.
type PostgresContainer struct {
	testcontainers.Container
	DSN string // superuser connectd, database postgres, via the published port
}

// StartPostgresContainer starts PostgreSQL 15 (superuser connectd, trust auth,
// max_prepared_transactions=64) from the image `make images` builds; it is
// removed when the test ends.
func StartPostgresContainer(t testing.TB, opts ...ContainerOption) *PostgresContainer {
	t.Helper()
	img := needDocker(t)
	req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
		Image:        img.Postgres,
		ExposedPorts: []string{"5432/tcp"},
		WaitingFor: wait.ForAll(
			wait.ForLog("database system is ready to accept connections"),
			wait.ForListeningPort("5432/tcp"),
		).WithDeadline(time.Minute),
	}}
	loopbackPorts(&req, nil)
	ctr := startContainer(t, req, opts)
	addr := hostAddr(t, ctr, "5432/tcp")
	return &PostgresContainer{Container: ctr,
		DSN: "postgres://connectd:connectd@" + addr + "/postgres?sslmode=disable"}
}

// KafkaContainers is a KRaft cluster started by StartKafkaContainers.
type KafkaContainers struct {
	// Brokers are the host addresses (127.0.0.1:<published port>), in node order.
	Brokers []string
	// InternalBrokers are the addresses other containers on Network use.
	InternalBrokers []string
	// Nodes are the containers, Nodes[i] being node.id i+1.
	Nodes   []testcontainers.Container
	Network *testcontainers.DockerNetwork
}

// StartKafkaContainers starts n combined broker+controller Kafka nodes (1, or
// 3 for failover: replication factor 3, min ISR 2) from the image `make
// images` builds, on a fresh Docker network. Each node advertises
// 127.0.0.1:<its published port> to clients on the host and <name>:9092 on the
// network. Returns once a client can create a topic and commit a transaction;
// everything is removed when the test ends.
func StartKafkaContainers(t testing.TB, n int, opts ...ContainerOption) *KafkaContainers {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartKafkaContainers: n = %d, want >= 1", n)
	}
	img := needDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	nw, err := network.New(ctx)
	testcontainers.CleanupNetwork(t, nw)
	if err != nil {
		t.Fatalf("create docker network: %v", err)
	}
	rf, isr := min(n, 3), 1
	if n >= 3 {
		isr = 2
	}
	// The host-side ports are chosen up front: each node must advertise its
	// own before it starts.
	ports := freePorts(t, n)
	id := randomHex(4)
	names := make([]string, n)
	voters := ""
	for i := range names {
		names[i] = fmt.Sprintf("connectd-kafka-%s-%d", id, i+1)
		if i > 0 {
			voters += ","
		}
		voters += fmt.Sprintf("%d@%s:9093", i+1, names[i])
	}

	kc := &KafkaContainers{Network: nw, Nodes: make([]testcontainers.Container, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		kc.Brokers = append(kc.Brokers, fmt.Sprintf("127.0.0.1:%d", ports[i]))
		kc.InternalBrokers = append(kc.InternalBrokers, names[i]+":9092")
		req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
			Image:          img.Kafka,
			Name:           names[i],
			Hostname:       names[i],
			Networks:       []string{nw.Name},
			NetworkAliases: map[string][]string{nw.Name: {names[i]}},
			ExposedPorts:   []string{"9094/tcp"},
			Env: map[string]string{
				"KAFKA_NODE_ID":                  strconv.Itoa(i + 1),
				"KAFKA_INTERNAL_HOST":            names[i],
				"KAFKA_CONTROLLER_QUORUM_VOTERS": voters,
				"KAFKA_ADVERTISED_HOST":          "127.0.0.1",
				"KAFKA_ADVERTISED_PORT":          strconv.Itoa(ports[i]),
				"KAFKA_REPLICATION_FACTOR":       strconv.Itoa(rf),
				"KAFKA_MIN_ISR":                  strconv.Itoa(isr),
			},
			// A node of a multi-node cluster only logs "started" once a
			// quorum of controllers is up, so all nodes start in parallel.
			WaitingFor: wait.ForLog("Kafka Server started").WithStartupTimeout(2 * time.Minute),
		}, Started: true}
		loopbackPorts(&req, map[string]int{"9094/tcp": ports[i]})
		for _, o := range opts {
			o(&req)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			kc.Nodes[i], errs[i] = testcontainers.GenericContainer(ctx, req)
		}()
	}
	wg.Wait()
	// The nodes are thrown away, so they are killed (no controlled shutdown,
	// which in a cluster shutting down as a whole waits for timeouts), all
	// at once.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, ctr := range kc.Nodes {
			wg.Go(func() {
				if err := testcontainers.TerminateContainer(ctr, testcontainers.StopTimeout(0)); err != nil {
					t.Logf("remove Kafka container: %v", err)
				}
			})
		}
		wg.Wait()
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start Kafka node %d (%s): %v", i+1, img.Kafka, err)
		}
	}
	if err := WaitKafka(ctx, kc.Brokers, int16(rf)); err != nil {
		t.Fatalf("Kafka containers: %v", err)
	}
	return kc
}

// freePorts returns n distinct free TCP ports on 127.0.0.1, chosen below
// the kernel's ephemeral range. A port the kernel hands out for port 0 is
// in that range, and so is the local port of every outgoing connection: in
// the time between closing the probe and Docker binding the port, one of
// the hundreds of client connections a test run opens took it (bind:
// address already in use, seen in a fault-matrix run beside a benchmark).
// Below the range only an explicit bind can take a port, so the window is
// left to other tests picking the same way, at random among some 12,000
// ports.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	lo, hi := 20000, ephemeralLow()
	ports := make([]int, 0, n)
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("no free port in 127.0.0.1:%d-%d after 1000 tries", lo, hi-1)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+rand.IntN(hi-lo))))
		if err != nil {
			continue // taken
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default 32768 when it cannot be read), at least 21000.
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	return max(low, 21000)
}
