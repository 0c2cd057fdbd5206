// Package admin serves connectd's HTTP admin API. Paths, verbs, status codes
// and JSON shapes follow Kafka Connect's REST API (including KIP-875's
// offsets endpoints) so its tooling works against connectd; connectd's own
// extras (guarantee, per-partition checkpoint and lag, commit counters) ride
// along in the same objects, and /health, /ready, /metrics, /openapi.json
// and /transactions (open and hanging Kafka transactions, and aborting one)
// sit beside them.
package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/connectd/connectd/cluster"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/connector"
)

// Server timeouts. The admin API answers from memory, so generous bounds
// cost nothing, and without them a client that never finishes its headers
// would hold a connection forever (slowloris).
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Connectors is the daemon hosting the connectors, as the admin API drives
// it; daemon.Daemon.API() implements it. Implementations report the conditions
// the API maps to Kafka Connect's status codes with the sentinels in this
// package (ErrNotFound, ErrExists, ErrNotStopped, ErrConflict), wrapped or
// not: the API tests them with errors.Is. Any other error is a 500, except
// config.Errors, a 400 listing every problem.
//
// A method that fails must leave the connector as it was: the API promises
// clients that a rejected request changed nothing.
type Connectors interface {
	// Names lists the connectors, sorted.
	Names() []string
	// Status is a snapshot of name's state, checkpoint and counters.
	Status(name string) (connector.Status, bool)
	// Config is name's parsed definition and the raw JSON or YAML it was
	// defined with (the file's connector entry, or an API request's config
	// object), before ${VAR} expansion.
	Config(name string) (config.Connector, []byte, bool)
	// Create adds and starts a connector; ErrExists if the name is taken.
	Create(ctx context.Context, c config.Connector, raw []byte) error
	// Update creates the connector, or replaces its definition and
	// restarts it (and only it); created says which.
	Update(ctx context.Context, c config.Connector, raw []byte) (created bool, err error)
	// Delete stops and removes a connector; ErrNotFound if there is none.
	Delete(ctx context.Context, name string) error
	// Pause holds a connector between batches; Resume lets it go on.
	Pause(name string) error
	Resume(name string) error
	// Stop is KIP-875's STOPPED: the connector commits or aborts its open
	// batch and releases its resources, but keeps its config; only then
	// may its offsets be altered or reset.
	Stop(ctx context.Context, name string) error
	// Restart stops and starts a connector from its committed checkpoint.
	Restart(ctx context.Context, name string) error
	// Offsets is the connector's committed checkpoint: for each source
	// partition the next offset to read.
	Offsets(ctx context.Context, name string) (connector.Checkpoint, error)
	// AlterOffsets overwrites the committed offsets of the partitions in
	// cp, leaving the others; ResetOffsets removes them all, so the
	// connector starts over (a Kappa-style replay). Both return
	// ErrNotStopped unless the connector is STOPPED.
	AlterOffsets(ctx context.Context, name string, cp connector.Checkpoint) error
	ResetOffsets(ctx context.Context, name string) error
	// Ready reports whether every connector is RUNNING, or PAUSED or
	// STOPPED because an operator asked for it.
	Ready() bool
}

// Option configures a Server.
type Option func(*Server)

// WithVersion sets the version and commit reported by GET /. Default "dev"
// and "".
func WithVersion(version, commit string) Option {
	return func(s *Server) { s.version, s.commit = version, commit }
}

// WithConfig tells the server the Kafka Connect type ("source" or "sink")
// of each connector in cfg. The type normally comes from Connectors.Config;
// these are consulted only when Config does not know a connector whose
// status exists (one being deleted). Without either the type is "unknown",
// as Connect reports a connector whose class it cannot load.
func WithConfig(cfg *config.Config) Option {
	return func(s *Server) {
		for _, cc := range cfg.Connectors {
			s.types[cc.Name] = ConnectorType(cc)
		}
	}
}

// MemberStatuses is the cluster's task statuses (package cluster's
// StatusLog): every member's tasks of a connector, this one's included.
type MemberStatuses interface {
	Statuses(connector string) []cluster.TaskStatus
}

// WithClusterStatus makes a connector's status list the tasks of every
// member of the cluster, each with its worker_id, as Kafka Connect's
// distributed mode does: this member's from its own connectors (live),
// the others' from the status topic. A member that stopped refreshing
// (crashed, cut off) shows its tasks UNASSIGNED until it comes back.
func WithClusterStatus(m MemberStatuses) Option {
	return func(s *Server) { s.members = m }
}

// WithWorkerID sets the worker_id reported in status. Default: the address
// the server listens on once Listen has bound it.
func WithWorkerID(id string) Option {
	return func(s *Server) { s.workerID = id }
}

// WithToken requires `Authorization: Bearer <token>` on every route except
// the probes (ProbePaths), which load balancers and orchestrators call
// without credentials, and, with WithAuth(writes), the reads. Default "": no authentication, so the API should then listen
// on loopback only (config's admin.listen default, 127.0.0.1:8083). The
// token usually comes from the environment through ${VAR} in the config.
func WithToken(token string) Option {
	return func(s *Server) { s.token = token }
}

// WithAuth sets which routes need WithToken's token: config.AdminAuthAll
// ("all", the default; "" means the same) or config.AdminAuthWrites, which
// leaves GET and HEAD open so dashboards and `curl` can read status
// without the token while every change still needs it. The probes are
// open either way.
func WithAuth(mode string) Option {
	return func(s *Server) { s.readsOpen = mode == config.AdminAuthWrites }
}

// WithTLS serves HTTPS with cfg (see TLSConfig) instead of plain HTTP.
func WithTLS(cfg *tls.Config) Option {
	return func(s *Server) { s.tls = cfg }
}

// TLSConfig is the server side of admin.tls: the certificate and key, and
// with a client CA, mutual TLS, where a client without a certificate signed
// by that CA is refused during the handshake, before any route or token is
// looked at.
func TLSConfig(t *config.AdminTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("admin API: tls: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("admin API: tls: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("admin API: tls: no PEM certificate in client CA file %s", t.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// WithMetrics serves reg at GET /metrics in Prometheus' exposition format
// (usually metrics.New(daemon).Registry). Default: /metrics answers 404.
func WithMetrics(reg *prometheus.Registry) Option {
	return func(s *Server) {
		s.metricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	}
}

// ConnectorType is Kafka Connect's name for what a connector does: a
// connector reading a Kafka topic is a "sink" (whatever it writes to), any
// other is a "source" (it brings data into its sink from outside Kafka).
func ConnectorType(cc config.Connector) string {
	if cc.Source.Type == "kafka" {
		return "sink"
	}
	return "source"
}

// Server is the admin API of one daemon.
type Server struct {
	conns   Connectors
	log     *slog.Logger
	version string
	commit  string
	types   map[string]string
	token   string
	// readsOpen is WithAuth(writes): GET and HEAD need no token.
	readsOpen bool
	// tls is WithTLS' config; nil serves plain HTTP.
	tls *tls.Config
	// metricsHandler serves WithMetrics' registry; nil without one.
	metricsHandler http.Handler
	// txns serves /transactions; nil without WithTransactions.
	txns Transactions
	// members is WithClusterStatus' view of the other members' tasks;
	// nil for a standalone daemon.
	members MemberStatuses
	mux     *http.ServeMux // the routes, without authentication
	handler http.Handler   // mux behind authentication

	mu       sync.Mutex
	workerID string
	ln       net.Listener
	srv      *http.Server
}

// New returns the admin API over conns (usually daemon.Daemon.API()). log may
// be nil (slog.Default()).
func New(conns Connectors, log *slog.Logger, opts ...Option) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{conns: conns, log: log, version: "dev", types: map[string]string{}}
	for _, o := range opts {
		o(s)
	}
	s.mux = s.routes()
	s.handler = s.authenticate(s.mux)
	return s
}

// Handler returns the API's routes, for tests and for embedding in another
// server.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen binds addr (host:port; port 0 picks a free port). Binding before
// serving lets the caller fail fast on a taken port, before it starts any
// connector, and learn the real address.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		ln.Close()
		return errors.New("admin API: already listening")
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	if s.workerID == "" {
		s.workerID = ln.Addr().String()
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// Addr is the bound address, or "" before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Serve serves on the listener bound by Listen until Shutdown; it returns
// nil after a Shutdown.
func (s *Server) Serve() error {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.mu.Unlock()
	if srv == nil {
		return errors.New("admin API: Serve before Listen")
	}
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	s.log.Info("admin API listening", "addr", ln.Addr().String(), "scheme", scheme)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin API: %w", err)
	}
	return nil
}

// ListenAndServe binds addr and serves until ctx is done, then shuts down,
// giving in-flight requests up to 5s.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if err := s.Listen(addr); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		return err
	}
	return <-errc
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx is done. It is a no-op before Listen.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	// Serve may never have run (a start-up failure after Listen); the
	// listener is closed either way so the port is released.
	_ = ln.Close()
	return err
}

func (s *Server) worker() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workerID
}
