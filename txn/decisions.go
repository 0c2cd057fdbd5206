package txn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A two-phase commit's decision is a record in the offsets topic, written
// inside the Kafka transaction that commits the batch: key
// ["<connector>","decision","<instance>"], value {"gids":[...]} naming the
// prepared transactions of that batch. The Kafka transaction is the commit
// point: if it commits, the decision is visible to read_committed readers
// and every gid it names must be committed; a prepared transaction no
// committed decision names must be rolled back.
//
// The key is per instance and the topic is compacted, so only each
// instance's latest decision survives. That is enough because an instance
// resolves its batch's prepared transactions before it prepares the next
// batch's: at most one decided batch per instance can still be in doubt,
// and it is the latest.

// decisionKind is the second element of a decision record's key; offsets
// records have two-element keys, so OffsetsTopic.apply skips decisions.
const decisionKind = "decision"

type decisionValue struct {
	GIDs []string `json:"gids"`
}

// DecisionRecord returns the record that commits gids, for instance's
// latest batch, when its transaction commits.
func (o *OffsetsTopic) DecisionRecord(instance string, gids []string) *kgo.Record {
	key, _ := json.Marshal([]string{o.Connector, decisionKind, instance})
	val, _ := json.Marshal(decisionValue{GIDs: gids})
	return &kgo.Record{Topic: o.Topic, Key: key, Value: val}
}

// LoadDecisions reads the topic like Load and returns the gids named by the
// latest committed decision of each instance of this connector.
func (o *OffsetsTopic) LoadDecisions(ctx context.Context) (map[string]bool, error) {
	latest := map[string][]string{} // instance -> gids
	err := o.scan(ctx, func(r *kgo.Record) {
		var key []string
		if json.Unmarshal(r.Key, &key) != nil || len(key) != 3 || key[0] != o.Connector || key[1] != decisionKind {
			return
		}
		var v decisionValue
		if r.Value == nil || json.Unmarshal(r.Value, &v) != nil {
			delete(latest, key[2])
			return
		}
		latest[key[2]] = v.GIDs
	})
	if err != nil {
		return nil, err
	}
	committed := map[string]bool{}
	for _, gids := range latest {
		for _, g := range gids {
			committed[g] = true
		}
	}
	return committed, nil
}

// GID is the global ID of one prepared transaction: it names the
// connector, the instance that prepared it (so recovery knows whose Kafka
// transaction may carry its decision, and fences that one), the instance's
// session (new at each start), the batch's sequence number in the session,
// and the participant (several may share a database).
type GID struct {
	Connector   string
	Instance    string
	Session     string
	Seq         uint64
	Participant int
}

// MaxGIDLength is PostgreSQL's limit on a prepared transaction's
// identifier (GIDSIZE, 200 bytes including the terminator).
const MaxGIDLength = 199

const gidScheme = "connectd"

// String encodes g as "connectd:<connector>:<instance>:<session>:<seq>:<participant>",
// with connector and instance query-escaped so that ':' separates fields
// unambiguously, and no character needs quoting in SQL but "'" (escaped
// too).
func (g GID) String() string {
	return GIDPrefix(g.Connector) + url.QueryEscape(g.Instance) + ":" + g.Session + ":" +
		strconv.FormatUint(g.Seq, 10) + ":" + strconv.Itoa(g.Participant)
}

// GIDPrefix is the prefix of every gid of connector's prepared
// transactions: what recovery lists.
func GIDPrefix(connector string) string {
	return gidScheme + ":" + url.QueryEscape(connector) + ":"
}

// ParseGID decodes a gid made by GID.String.
func ParseGID(s string) (GID, error) {
	f := strings.Split(s, ":")
	if len(f) != 6 || f[0] != gidScheme {
		return GID{}, fmt.Errorf("gid %q: not connectd:<connector>:<instance>:<session>:<seq>:<participant>", s)
	}
	var g GID
	var err error
	var errs []error
	g.Connector, err = url.QueryUnescape(f[1])
	errs = append(errs, err)
	g.Instance, err = url.QueryUnescape(f[2])
	errs = append(errs, err)
	g.Session = f[3]
	g.Seq, err = strconv.ParseUint(f[4], 10, 64)
	errs = append(errs, err)
	g.Participant, err = strconv.Atoi(f[5])
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return GID{}, fmt.Errorf("gid %q: %w", s, err)
	}
	return g, nil
}
