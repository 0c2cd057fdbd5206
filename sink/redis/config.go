// Package redis is connectd's Redis sink. With exactly_once every batch
// compare-and-sets the checkpoint in an offsets hash, applies every write
// and stores the new checkpoint in one atomic step: a MULTI/EXEC block
// under WATCH of the keys its checks read, or, when a check fails or a
// watched key changes, one Lua script (loaded once, run by EVALSHA) that
// checks again and decides (watch.go). Either runs atomically, so data and
// offsets are applied, persisted (per the server's AOF policy) and lost
// together (txn.SinkOffsets drives it through txn.SinkStore). With
// at_least_once it is plain writes in MULTI/EXEC blocks of batch_size
// (txn.SinkWriter), the benchmark's baseline.
//
// Every key the sink writes starts with key_prefix: the data keys, the
// offsets hash (offsets_key, one per consumer group, a field
// "<topic>/<partition>" = "<claim epoch>:<next offset>" per partition), the
// dead-letter stream, the test apply counters, the audit log and the state
// hashes of stateful stages (state.go). Scripts
// use Redis 7 script flags (a "#!lua" shebang), so the server must be
// Redis 7.0 or newer; the sink's user needs permission to run EVALSHA and
// every command the script calls on those keys (without WATCH, MULTI,
// EXEC, HMGET, TYPE and GET every commit takes the script).
package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/config"
	"github.com/connectd/connectd/kafkaauth"
)

// Structures: how a record is stored under its key.
const (
	// StructureString stores the mapped value with SET (the default).
	StructureString = "string"
	// StructureHash stores the mapped fields with HSET.
	StructureHash = "hash"
	// StructureStream appends an entry with XADD: the field event_id, then
	// the mapped fields.
	StructureStream = "stream"
)

// Value mappings: what of a record is stored.
const (
	// ValueWhole is the record value as is (the default).
	ValueWhole = "value"
	// ValueFields is the top-level fields of a JSON object value, one
	// hash or stream field each; needs structure hash or stream.
	ValueFields = "fields"
	// ValueJSONPrefix, followed by a dot path ("json:order.total"), is one
	// field of a JSON value.
	ValueJSONPrefix = "json:"
)

// Defaults of the config fields.
const (
	DefaultKey        = "{event_id}"
	DefaultOffsetsKey = "connectd:offsets:{group}"
	DefaultDLQStream  = "connectd:dlq"
	DefaultBatchSize  = 5000
	DefaultTimeout    = 10 * time.Second
	// AuditLogKey is the list, under key_prefix, that records every
	// application when audit_log is on.
	AuditLogKey = "connectd:applied-log"
	// ApplyCounterPrefix, under key_prefix and followed by the event ID,
	// names the test apply counters.
	ApplyCounterPrefix = "connectd:applied:"
	// maxFields bounds the fields of one record: Lua's unpack, which hands
	// them to HSET or XADD, fails above about 8000 values, and a failure
	// in the middle of the script would leave the batch half applied.
	maxFields = 3000
)

// Config is the `sink: {type: redis}` section.
type Config struct {
	// Addr is the server's host:port. Exactly one of addr and url is
	// required.
	Addr string `yaml:"addr"`
	// URL is a redis:// or rediss:// URL (user, password and db may be in
	// it).
	URL string `yaml:"url"`
	// Password, when set, overrides the URL's.
	Password string `yaml:"password"`
	// TLS, when any of its fields is set, connects with TLS verified
	// against ca_file (the system's roots without one), with cert_file and
	// key_file as the client certificate when the server requires one,
	// and server_name as the name the server's certificate must carry
	// (default: the host of addr or url). It takes precedence over a
	// rediss:// URL's TLS, which trusts only the system's roots.
	// insecure_skip_verify is refused: give the server's CA instead.
	TLS *config.TLS `yaml:"tls"`
	// DB, when not 0, overrides the URL's database number.
	DB int `yaml:"db"`
	// Key is the template of a record's data key. Placeholders:
	// {event_id}, {key}, {topic}, {partition}, {offset} (the record's
	// origin), {json:dot.path} (a string, number or boolean field of the
	// JSON value). {{ and }} are literal braces (Redis Cluster hash tags).
	// Default "{event_id}".
	Key string `yaml:"key"`
	// KeyPrefix is prepended to every key the sink writes. Default "".
	KeyPrefix string `yaml:"key_prefix"`
	// Value is value (the whole record value, default), json:dot.path (one
	// field of a JSON value: a string unquoted, anything else as JSON), or
	// fields (the top-level fields of a JSON object, for hash and stream).
	Value string `yaml:"value"`
	// Structure is string (SET, default), hash (HSET) or stream (XADD).
	Structure string `yaml:"structure"`
	// TTL, when positive, expires each data key (PX / PEXPIRE) that long
	// after its last write. Default 0: no expiry.
	TTL time.Duration `yaml:"ttl"`
	// PrefixKey, when set, is a string key (not under key_prefix) holding
	// the key prefix readers should use: the sink sets it to key_prefix at
	// start if it does not exist, and leaves it alone if it does. A Kappa
	// promote (connectd promote) swaps it, in one script, to the prefix of
	// the replay that takes over, so readers switch at once.
	PrefixKey string `yaml:"prefix_key"`
	// OffsetsKey is the hash holding the checkpoints (exactly_once); it
	// must contain {group}. Default "connectd:offsets:{group}".
	OffsetsKey string `yaml:"offsets_key"`
	// DLQStream receives dead-lettered records (errors.tolerance: all) by
	// XADD. Default "connectd:dlq".
	DLQStream string `yaml:"dlq_stream"`
	// AuditLog appends "<target>:<event_id>" to the list
	// connectd:applied-log on every application, in the same script as
	// the write (exactly_once) or the same pipeline (at_least_once), so a
	// checker sees each double application as a repeated entry. Default
	// false: it grows without bound, it is for tests and audits.
	AuditLog bool `yaml:"audit_log"`
	// TestApplyCounter INCRs connectd:applied:<event_id> on every
	// application: a non-idempotent side effect that shows double
	// application. Default false.
	TestApplyCounter bool `yaml:"test_apply_counter"`
	// BatchSize is how many records one pipeline round trip carries with
	// at_least_once. With exactly_once a batch is always one script,
	// whatever its size: splitting it would break its atomicity. Default
	// 5000.
	BatchSize int `yaml:"batch_size"`
	// Timeout bounds dialing, each read and each write. A commit that
	// times out has an unknown outcome. Default 10s.
	Timeout time.Duration `yaml:"timeout"`

	key   keyTemplate
	value valueMapping
}

// Validate applies defaults and checks the config; errors start with the
// field name ("key: ...") so they can be positioned.
func (c *Config) Validate() error {
	switch {
	case c.Addr == "" && c.URL == "":
		return errors.New("addr: a Redis address (host:port) or url is required")
	case c.Addr != "" && c.URL != "":
		return errors.New("url: give either addr or url, not both")
	case c.Addr != "":
		if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
			return fmt.Errorf("addr: %q is not host:port", c.Addr)
		}
	default:
		if _, err := redis.ParseURL(c.URL); err != nil {
			// The URL may hold a password: name the problem, not the URL.
			return fmt.Errorf("url: %v", err)
		}
	}
	if c.DB < 0 {
		return errors.New("db: must not be negative")
	}
	if c.TLS.On() {
		if c.TLS.InsecureSkipVerify {
			return errors.New("tls.insecure_skip_verify: not supported by the redis sink; set tls.ca_file to the CA that signed the server's certificate")
		}
		// Reads the files now, so a missing or malformed one fails the
		// config at its position instead of every commit.
		if _, err := c.tlsConfig(); err != nil {
			return err
		}
	}
	if c.Key == "" {
		c.Key = DefaultKey
	}
	kt, err := parseKeyTemplate(c.Key)
	if err != nil {
		return fmt.Errorf("key: %v", err)
	}
	c.key = kt
	if c.Structure == "" {
		c.Structure = StructureString
	}
	switch c.Structure {
	case StructureString, StructureHash, StructureStream:
	default:
		return fmt.Errorf("structure: %q is not %s, %s or %s", c.Structure, StructureString, StructureHash, StructureStream)
	}
	if c.Value == "" {
		c.Value = ValueWhole
	}
	vm, err := parseValueMapping(c.Value)
	if err != nil {
		return fmt.Errorf("value: %v", err)
	}
	if vm.kind == valueFields && c.Structure == StructureString {
		return fmt.Errorf("value: %s needs structure %s or %s", ValueFields, StructureHash, StructureStream)
	}
	c.value = vm
	if c.TTL < 0 {
		return errors.New("ttl: must not be negative")
	}
	if c.TTL > 0 && c.TTL < time.Millisecond {
		return errors.New("ttl: must be at least 1ms (Redis expiries are in milliseconds)")
	}
	if c.OffsetsKey == "" {
		c.OffsetsKey = DefaultOffsetsKey
	}
	if strings.Count(c.OffsetsKey, "{group}") != 1 {
		return errors.New("offsets_key: must contain {group} once, so each consumer group has its own checkpoints")
	}
	if c.DLQStream == "" {
		c.DLQStream = DefaultDLQStream
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchSize < 0 {
		return errors.New("batch_size: must be positive")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 {
		return errors.New("timeout: must be positive")
	}
	return nil
}

// options returns the client options. Retries are off: go-redis would
// otherwise resend a script whose first attempt may have run, and the
// store must classify every failure itself.
func (c *Config) options() (*redis.Options, error) {
	o := &redis.Options{Addr: c.Addr}
	if c.URL != "" {
		var err error
		if o, err = redis.ParseURL(c.URL); err != nil {
			return nil, fmt.Errorf("url: %v", err)
		}
	}
	if c.Password != "" {
		o.Password = c.Password
	}
	if c.DB != 0 {
		o.DB = c.DB
	}
	if c.TLS.On() {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		if tc.ServerName == "" {
			// go-redis hands the config to crypto/tls as is, which
			// needs a name to check the certificate against.
			tc.ServerName, _, _ = net.SplitHostPort(o.Addr)
		}
		o.TLSConfig = tc
	}
	o.MaxRetries = -1
	o.DialTimeout = c.Timeout
	o.ReadTimeout = c.Timeout
	o.WriteTimeout = c.Timeout
	o.ContextTimeoutEnabled = true
	return o, nil
}

// tlsConfig builds the tls block's client configuration through
// kafkaauth, which builds Kafka's the same way; errors name "tls.<field>".
func (c *Config) tlsConfig() (*tls.Config, error) { return kafkaauth.TLSConfigAt(*c.TLS, "tls") }

// keys names the sink's own keys, under the prefix.
type keys struct {
	prefix, dlq, audit, counter string
	offsets                     string // with {group}
	state                       string // followed by <ns>:<topic>:<partition>
}

func (c *Config) keys() keys {
	p := c.KeyPrefix
	return keys{prefix: p, dlq: p + c.DLQStream, audit: p + AuditLogKey,
		counter: p + ApplyCounterPrefix, offsets: p + c.OffsetsKey, state: p + StateKeyPrefix}
}

func (k keys) offsetsKey(group string) string {
	return strings.Replace(k.offsets, "{group}", group, 1)
}

// reserved reports whether a rendered data key would collide with one of
// the sink's own keys, which would make a write fail (or corrupt the
// checkpoint or a stage's state) in the middle of a script.
func (k keys) reserved(key, offsetsKey string, counters bool) bool {
	return key == offsetsKey || key == k.dlq || key == k.audit ||
		(counters && strings.HasPrefix(key, k.counter)) || strings.HasPrefix(key, k.state)
}
