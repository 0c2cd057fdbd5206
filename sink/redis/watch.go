package redis

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
)

// The commit's fast path: an optimistic transaction instead of the script.
//
// The commit script receives the whole batch as ARGV, and Redis turns
// every argument into a Lua string, hashing each of its bytes, then back
// into a Redis string for MSET: two copies and a byte-by-byte hash of
// every value, which made the script cost twice what the same writes cost
// in a MULTI/EXEC block (10,000 records of 1 KB on a private
// appendfsync-always server: about 90k records/s by script, 200k by
// MULTI/EXEC). So Commit first tries:
//
//	WATCH  the offsets hash and every key whose type a write depends on
//	read   the partitions' "<epoch>:<next>" (HMGET), the types of those
//	       keys (TYPE) and the apply counters (GET), checked in Go as the
//	       script checks them
//	MULTI  the same writes as the script, then the new checkpoints
//	EXEC
//
// EXEC applies the block only if no watched key changed since WATCH, so
// the checks still hold when it runs and none of its commands can fail
// (SET and MSET replace a key of any type): data and checkpoints are
// applied together or not at all, as by the script, and the block is
// logged to the AOF as one MULTI/EXEC, as the script's effects are.
// Whenever the fast path cannot tell that the commit succeeds — a check
// fails (fenced, a key of another type, a counter that is no integer),
// a watched key changed (another member committed or claimed in the same
// group's hash; the claim script writes it too), the server refused the
// block before running it (out of memory, EXECABORT) or a command of the
// path is refused (an ACL without WATCH) — nothing was written and the
// script decides, with its own checks and its exact refusals.

// maxWatchedKeys bounds the keys one fast-path commit WATCHes; a batch that
// needs more (hash or stream targets, or apply counters, a key per record)
// commits through the script at once. WATCH checks each key against the
// client's list of keys it already watches, so one WATCH of n keys costs
// n²/2 comparisons on the server's only thread: 10,000 keys took 420-620 ms
// a commit in TestSIGKILLRestartsInSeconds (SLOWLOG), which starved every
// other client of the shared server into i/o timeouts (a clean-clone CI
// run). The fast path pays off for string targets, which watch one key.
const maxWatchedKeys = 64

// errSlowPath says the fast path wrote nothing and the script must decide.
var errSlowPath = errors.New("redis sink: commit through the script")

// typeCheck is a key the commit writes whose type must be want (or none).
type typeCheck struct{ key, want string }

// commitWatched is Commit's fast path; errSlowPath means the script must
// run.
func (s *Store) commitWatched(ctx context.Context, offsetsKey string, moves []move, ops []op, state []stateHash) error {
	typed, counters := s.plan.watchedKeys(ops, state)
	watch := make([]string, 0, 1+len(typed)+len(counters))
	watch = append(watch, offsetsKey)
	for _, c := range typed {
		watch = append(watch, c.key)
	}
	watch = append(watch, counters...)
	if len(watch) > maxWatchedKeys {
		return errSlowPath
	}
	fields := make([]string, len(moves))
	for i, m := range moves {
		fields[i] = m.field
	}
	err := s.client.Watch(ctx, func(tx *redis.Tx) error {
		cmds, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HMGet(ctx, offsetsKey, fields...)
			for _, c := range typed {
				p.Type(ctx, c.key)
			}
			for _, k := range counters {
				p.Get(ctx, k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) || failed(cmds) != nil {
			if refused(cmds) {
				return errSlowPath // WRONGTYPE (offsets hash, counter) or NOPERM
			}
			return classify("commit", cmp.Or(failed(cmds), err)) // nothing was written
		}
		stored := cmds[0].(*redis.SliceCmd).Val()
		for i, m := range moves {
			if v, _ := stored[i].(string); v != m.want {
				return errSlowPath
			}
		}
		for i, c := range typed {
			if t := cmds[1+i].(*redis.StatusCmd).Val(); t != "none" && t != c.want {
				return errSlowPath
			}
		}
		for _, cmd := range cmds[1+len(typed):] {
			if v, err := cmd.(*redis.StringCmd).Result(); err == nil {
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					return errSlowPath
				}
			}
		}
		if s.beforeExec != nil {
			s.beforeExec()
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			s.plan.queueWrites(ctx, p, ops)
			pipeState(ctx, p, state)
			pairs := make([]any, 0, 2*len(moves))
			for _, m := range moves {
				pairs = append(pairs, m.field, m.next)
			}
			if len(pairs) > 0 {
				p.HSet(ctx, offsetsKey, pairs...)
			}
			return nil
		})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, redis.TxFailedErr), strings.HasPrefix(err.Error(), "EXECABORT"):
			return errSlowPath // a watched key changed, or the block was refused whole
		}
		return classify("commit", err)
	}, watch...)
	var ce *connector.CommitError
	if err == nil || errors.Is(err, errSlowPath) || errors.As(err, &ce) {
		return err
	}
	// WATCH itself failed: refused (NOPERM) or not answered.
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return errSlowPath
	}
	return classify("commit", err)
}

// failed returns the first error of cmds other than a nil reply (GET of
// an absent counter): a command refused, or the connection lost.
func failed(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

// refused reports whether a command of cmds got an error reply from the
// server (not a nil reply).
func refused(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		var rerr redis.Error
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) && errors.As(err, &rerr) {
			return true
		}
	}
	return false
}

// watchedKeys returns the keys the commit of ops and state writes whose
// type it depends on — the audit log, the DLQ stream, hash and stream
// targets, state hashes — each once with its wanted type, and the apply
// counters. String targets need none: SET replaces any type.
func (p *planner) watchedKeys(ops []op, state []stateHash) ([]typeCheck, []string) {
	var typed []typeCheck
	seen := map[string]bool{}
	add := func(key, want string) {
		if !seen[key] {
			seen[key] = true
			typed = append(typed, typeCheck{key, want})
		}
	}
	if p.cfg.AuditLog && len(ops) > 0 {
		add(p.k.audit, "list")
	}
	var counters []string
	for i := range ops {
		switch o := &ops[i]; o.kind {
		case opHash:
			add(o.key, "hash")
		case opStream, opDLQ:
			add(o.key, "stream")
		}
		if p.cfg.TestApplyCounter {
			counters = append(counters, p.counterKey(ops[i].eventID))
		}
	}
	for i := range state {
		add(state[i].key, "hash")
	}
	return typed, counters
}
