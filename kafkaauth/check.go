package kafkaauth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/tlscause"
)

// ErrSecurity marks a Check failure caused by the TLS or SASL settings (or
// the broker's): a wrong password, an untrusted certificate, TLS against a
// plaintext port or the reverse. Retrying cannot fix it, unlike a broker
// that is down, so callers refuse to start on it.
var ErrSecurity = errors.New("kafka connection security")

// Check connects to each seed broker in turn with opts and sends one
// Metadata request, returning nil at the first that answers. Otherwise the
// error has one line per broker, naming its address and the cause in the
// terms of kafka.tls and kafka.sasl. franz-go itself retries a refused
// authentication or handshake like any connection error until a request
// times out, and reports a SASL failure that the broker answers by closing
// the connection as a bare EOF; this is where the daemon and verify learn
// why instead.
func Check(ctx context.Context, brokers []string, opts []kgo.Opt, k config.Kafka) error {
	var errs []error
	for _, b := range brokers {
		err := checkOne(ctx, b, opts, k)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

func checkOne(ctx context.Context, broker string, opts []kgo.Opt, k config.Kafka) error {
	h := &saslHook{}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...), kgo.SeedBrokers(broker), kgo.WithHooks(h))...)
	if err != nil {
		return fmt.Errorf("kafka broker %s: %w", broker, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = cl.Ping(ctx)
	if err == nil {
		return nil
	}
	saslFailed, connectErr := h.state()
	cause, security := explain(err, saslFailed, k)
	switch {
	case cause != "":
	case TLSOn(k) && connectErr != nil && (errors.Is(connectErr, io.EOF) || errors.Is(connectErr, syscall.ECONNRESET)):
		// Kafka reads a ClientHello as a request far above its size
		// limit and drops the connection, with a reset when the rest
		// of the hello is still unread.
		cause, security = "the broker closed the connection during the TLS handshake (kafka.tls is set; is this a plaintext listener?)", true
	case TLSOn(k) && ctx.Err() != nil:
		// Not refused outright: a slow broker looks the same, so the
		// caller goes on and retries, with this hint in the log.
		cause = "no answer to the TLS handshake or first request in time (kafka.tls is set; is this a plaintext listener?)"
	}
	return &checkError{broker: broker, cause: cause, err: err, security: security}
}

// checkError is one broker's Check failure: the address, the cause in
// configuration terms when known, and franz-go's error after it.
type checkError struct {
	broker, cause string
	err           error
	security      bool
}

func (e *checkError) Error() string {
	if e.cause == "" {
		return fmt.Sprintf("kafka broker %s: %v", e.broker, e.err)
	}
	return fmt.Sprintf("kafka broker %s: %s (%v)", e.broker, e.cause, e.err)
}

func (e *checkError) Unwrap() error { return e.err }

// Is makes a security cause match ErrSecurity.
func (e *checkError) Is(target error) bool { return e.security && target == ErrSecurity }

// saslHook notes a failed read of a SASLAuthenticate exchange, so that a
// connection the broker closed there reads as a refused login rather than
// an EOF, and the last connection error, which Ping may replace by its
// context's.
type saslHook struct {
	mu         sync.Mutex
	err        bool
	connectErr error
}

func (h *saslHook) state() (saslFailed bool, connectErr error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err, h.connectErr
}

// OnBrokerConnect keeps the last dial or TLS handshake error.
func (h *saslHook) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.mu.Lock()
		h.connectErr = err
		h.mu.Unlock()
	}
}

func (h *saslHook) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.SASLAuthenticate) && err != nil {
		h.mu.Lock()
		h.err = true
		h.mu.Unlock()
	}
}

// explain says in configuration terms why err happened, and whether it is
// a security problem (as opposed to a broker that is down or slow).
func explain(err error, saslFailed bool, k config.Kafka) (string, bool) {
	mech, user := "", ""
	if k.SASL != nil {
		mech, user = k.SASL.Mechanism, k.SASL.Username
	}
	var firstEOF *kgo.ErrFirstReadEOF
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed) || (saslFailed && k.SASL != nil):
		who := ""
		if user != "" {
			who = fmt.Sprintf(" as user %q", user)
		}
		return fmt.Sprintf("SASL %s authentication%s refused: wrong username, password or token, or no such user for this mechanism", mech, who), true
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Sprintf("the broker does not enable SASL mechanism %s (kafka.sasl.mechanism)", mech), true
	case errors.Is(err, kerr.IllegalSaslState):
		return "the broker refused the SASL exchange", true
	case !TLSOn(k) && strings.Contains(err.Error(), "appear to be a tls alert record"):
		// A Java broker answers a plaintext request on its TLS listener
		// with a TLS alert, which franz-go reads as an impossible
		// response size and describes only in its message.
		return "the broker answered with a TLS alert: this listener requires TLS, and kafka.tls is not set", true
	}
	if cause := brokerPeer.Explain(err); cause != "" {
		return cause, true
	}
	if alert, ok := tlscause.RemoteAlert(err); ok {
		// Go answers a missing client certificate with the TLS 1.3
		// alert certificate_required; Java (Kafka) with bad_certificate,
		// which is also its answer to an untrusted one.
		if alert == "certificate required" || (k.TLS != nil && k.TLS.CertFile == "") {
			return "TLS: the broker requires a client certificate (set kafka.tls.cert_file and key_file)", true
		}
		if end, expired := clientCertExpired(k); expired {
			return fmt.Sprintf("TLS: the broker rejected our client certificate, which expired at %s (kafka.tls.cert_file)", end.UTC().Format(time.RFC3339)), true
		}
		return "TLS: the broker rejected the handshake (is our client certificate signed by a CA it trusts?)", true
	}
	if errors.As(err, &firstEOF) {
		if !TLSOn(k) {
			return "the broker closed the connection at the first request: it most likely requires TLS, and kafka.tls is not set", true
		}
		return "the broker closed the connection at the first request (does it require SASL, or a different listener?)", true
	}
	return "", false
}

// brokerPeer is a Kafka broker as the kafka.tls block governs it.
var brokerPeer = tlscause.Peer{
	Name:     "broker",
	CA:       "a CA in kafka.tls.ca_file",
	HostHint: "set kafka.tls.server_name to a name it carries",
	NotTLS:   "kafka.tls is set; is this a plaintext listener?",
}

// clientCertExpired reports whether kafka.tls.cert_file's certificate is
// past its NotAfter, and when that was: Java brokers answer an expired
// client certificate with a generic alert, so the cause is told from the
// file.
func clientCertExpired(k config.Kafka) (time.Time, bool) {
	if k.TLS == nil || k.TLS.CertFile == "" {
		return time.Time{}, false
	}
	data, err := os.ReadFile(k.TLS.CertFile)
	if err != nil {
		return time.Time{}, false
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return time.Time{}, false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, false
	}
	return cert.NotAfter, time.Now().After(cert.NotAfter)
}
