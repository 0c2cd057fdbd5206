package redis

import (
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/connectd/connectd/connector"
)

// The offsets hash has one field per partition, "<topic>/<partition>",
// whose value is "<claim epoch>:<next offset>"; next is -1 for a partition
// claimed but never committed. Comparing the stored string with the one
// expected compares claim epoch and checkpoint at once.

// claimScript claims partitions: it raises each one's claim epoch (a new
// field starts at 1) and keeps its checkpoint. A script runs alone, so
// concurrent claims get distinct epochs.
//
// A claim is all or nothing: a command that fails in a script does not
// undo the ones before it, so the script first reads and checks every
// field — "<epoch>:<next>" with a decimal epoch, and an epoch below
// MaxInt64, as the next one must fit in an int64 — and only then HSETs
// any. Epochs are raised as decimal strings: Lua numbers are doubles,
// exact only up to 2^53.
//
//	KEYS[1]  the group's offsets hash
//	ARGV     partition fields
//
// Replies {"ok", {next, epoch per field}}, {"wrongtype", "0", key, type},
// {"malformed", field, value} or {"exhausted", field, value}; in the
// refusals nothing was written.
var claimScript = redis.NewScript(`#!lua
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'none' and t ~= 'hash' then return {'wrongtype', '0', KEYS[1], t, 'hash'} end
local MAX = '9223372036854775807'
local epochs, nexts = {}, {}
for i = 1, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  local e, n = '0', '-1'
  if v then
    e, n = string.match(v, '^(%d+):(%-?%d+)$')
    if not e then return {'malformed', ARGV[i], v} end
    e = string.gsub(e, '^0+', '')
    if e == '' then e = '0' end
    if #e > #MAX or (#e == #MAX and e >= MAX) then return {'exhausted', ARGV[i], v} end
  end
  epochs[i], nexts[i] = e, n
end
local out = {}
for i = 1, #ARGV do
  local e = epochs[i]
  local j = #e
  while j > 0 and string.sub(e, j, j) == '9' do j = j - 1 end
  if j == 0 then
    e = '1' .. string.rep('0', #e)
  else
    e = string.sub(e, 1, j - 1) .. string.char(string.byte(e, j) + 1) .. string.rep('0', #e - j)
  end
  redis.call('HSET', KEYS[1], ARGV[i], e .. ':' .. nexts[i])
  out[#out + 1] = nexts[i]
  out[#out + 1] = e
end
return {'ok', out}
`)

// commitScript applies one batch and moves its checkpoints, all or nothing.
//
// A Redis script runs atomically, but a command that fails in the middle
// of it does not undo the commands before it. So the script first checks
// everything that could make a later command fail — the offsets CAS, then
// the type of every key it will HSET, XADD, RPUSH or INCR (and that apply
// counters hold integers) — and only then writes; every value was rendered
// in Go, and
// the "#!lua" shebang makes Redis refuse the whole script up front when it
// is out of memory or a read-only replica, instead of at the first write.
// String keys are not type-checked: SET replaces a key of any type and
// cannot fail, as with a plain SET (and without a TTL they are written
// with MSET, 1000 keys per call, which halves the script's cost).
//
// State records (state.go) come last, grouped by state hash: one HSET and
// one HDEL per hash and chunk, whatever the mix, and checked to be hashes
// with the other keys before anything is written.
//
//	KEYS[1] offsets hash   KEYS[2] DLQ stream   KEYS[3] audit log
//	KEYS[3+i]   record i's target key (i = 1..n)
//	KEYS[3+n+i] record i's apply counter (test_apply_counter only)
//	then H state hashes
//	ARGV[1] partitions P   ARGV[2] records n   ARGV[3] ttl ms (0 none)
//	ARGV[4] audit log 0/1  ARGV[5] apply counters 0/1  ARGV[6] state hashes H
//	then P times: field, expected "<epoch>:<next>", new "<epoch>:<next>"
//	then n times: kind (s h x d), audit entry, m, m values
//	then H times: s, d, s field/value pairs to HSET, d fields to HDEL
//
// Replies {"ok"}, {"fenced", field, stored} or
// {"wrongtype", record index (0: a sink key), key, found, wanted}; in both
// refusals nothing was written.
var commitScript = redis.NewScript(`#!lua
local CHUNK = ` + strconv.Itoa(stateChunk) + `
local P, n, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local audit, counters, H = ARGV[4] == '1', ARGV[5] == '1', tonumber(ARGV[6])
local sk = 3 + n
if counters then sk = sk + n end
local function typ(k) return redis.call('TYPE', k)['ok'] end
local function need(i, k, want)
  local t = typ(k)
  if t ~= 'none' and t ~= want then return {'wrongtype', tostring(i), k, t, want} end
end
local bad = need(0, KEYS[1], 'hash')
if bad then return bad end
local a = 7
for p = 1, P do
  local got = redis.call('HGET', KEYS[1], ARGV[a])
  if got ~= ARGV[a + 1] then return {'fenced', ARGV[a], got or ''} end
  a = a + 3
end
if audit then
  bad = need(0, KEYS[3], 'list')
  if bad then return bad end
end
local want = {s = 'string', h = 'hash', x = 'stream'}
local recs, pos, dlqChecked = a, a, false
for i = 1, n do
  local kind = ARGV[pos]
  if kind == 'd' then
    if not dlqChecked then
      bad = need(0, KEYS[2], 'stream')
      if bad then return bad end
      dlqChecked = true
    end
  elseif kind ~= 's' then
    bad = need(i, KEYS[3 + i], want[kind])
    if bad then return bad end
  end
  if counters then
    local c = KEYS[3 + n + i]
    bad = need(i, c, 'string')
    if bad then return bad end
    local v = redis.call('GET', c)
    if v and not string.match(v, '^%-?%d+$') then return {'wrongtype', tostring(i), c, 'non-integer string', 'integer'} end
  end
  pos = pos + 3 + tonumber(ARGV[pos + 2])
end
local states = pos
for h = 1, H do
  bad = need(0, KEYS[sk + h], 'hash')
  if bad then return bad end
  pos = pos + 2 + 2 * tonumber(ARGV[pos]) + tonumber(ARGV[pos + 1])
end
local log, mset = {}, {}
pos = recs
for i = 1, n do
  local kind, m = ARGV[pos], tonumber(ARGV[pos + 2])
  local k = KEYS[3 + i]
  if kind == 's' then
    if ttl > 0 then
      redis.call('SET', k, ARGV[pos + 3], 'PX', ttl)
    else
      mset[#mset + 1] = k
      mset[#mset + 1] = ARGV[pos + 3]
      if #mset == 2000 then
        redis.call('MSET', unpack(mset))
        mset = {}
      end
    end
  elseif kind == 'h' then
    redis.call('HSET', k, unpack(ARGV, pos + 3, pos + 2 + m))
    if ttl > 0 then redis.call('PEXPIRE', k, ttl) end
  elseif kind == 'x' then
    redis.call('XADD', k, '*', unpack(ARGV, pos + 3, pos + 2 + m))
    if ttl > 0 then redis.call('PEXPIRE', k, ttl) end
  else
    redis.call('XADD', KEYS[2], '*', unpack(ARGV, pos + 3, pos + 2 + m))
  end
  if counters then redis.call('INCR', KEYS[3 + n + i]) end
  if audit then
    log[#log + 1] = ARGV[pos + 1]
    if #log == 1000 then
      redis.call('RPUSH', KEYS[3], unpack(log))
      log = {}
    end
  end
  pos = pos + 3 + m
end
if #mset > 0 then redis.call('MSET', unpack(mset)) end
if #log > 0 then redis.call('RPUSH', KEYS[3], unpack(log)) end
pos = states
for h = 1, H do
  local k, ns, nd = KEYS[sk + h], tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])
  local i, last = pos + 2, pos + 1 + 2 * ns
  while i <= last do
    local j = math.min(i + CHUNK - 1, last)
    redis.call('HSET', k, unpack(ARGV, i, j))
    i = j + 1
  end
  last = last + nd
  while i <= last do
    local j = math.min(i + CHUNK - 1, last)
    redis.call('HDEL', k, unpack(ARGV, i, j))
    i = j + 1
  end
  pos = last + 1
end
a = 7
for p = 1, P do
  redis.call('HSET', KEYS[1], ARGV[a], ARGV[a + 2])
  a = a + 3
end
return {'ok'}
`)

// snapshotScript reads a group's checkpoints and the audit log in one
// atomic step.
//
//	KEYS[1] offsets hash   KEYS[2] audit log
var snapshotScript = redis.NewScript(`#!lua flags=no-writes
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}
`)

// commitArgs lays out the commit script's KEYS and ARGV for ops and the
// state changes, moving each partition of to from from (absent: -1) to
// to, at its claim epoch.
func (p *planner) commitArgs(offsetsKey string, epochs map[connector.TopicPartition]int64, from, to connector.Checkpoint, ops []op, state []stateHash) ([]string, []any, error) {
	tps := to.Partitions()
	counters := p.cfg.TestApplyCounter
	nkeys := 3 + len(ops) + len(state)
	if counters {
		nkeys += len(ops)
	}
	keys := make([]string, 3, nkeys)
	keys[0], keys[1], keys[2] = offsetsKey, p.k.dlq, p.k.audit
	nargs := 6 + 3*len(tps)
	for i := range ops {
		nargs += 3 + len(ops[i].args)
	}
	for i := range state {
		nargs += 2 + len(state[i].set) + len(state[i].del)
	}
	args := make([]any, 0, nargs)
	args = append(args, len(tps), len(ops), p.cfg.TTL.Milliseconds(), flag(p.cfg.AuditLog), flag(counters), len(state))
	moves, err := checkpointMoves(epochs, from, to)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range moves {
		args = append(args, m.field, m.want, m.next)
	}
	for i := range ops {
		o := &ops[i]
		keys = append(keys, o.key)
		args = append(args, o.kind, o.entry, len(o.args))
		args = append(args, o.args...)
	}
	if counters {
		for i := range ops {
			keys = append(keys, p.counterKey(ops[i].eventID))
		}
	}
	for i := range state {
		h := &state[i]
		keys = append(keys, h.key)
		args = append(args, len(h.set)/2, len(h.del))
		args = append(args, h.set...)
		args = append(args, h.del...)
	}
	return keys, args, nil
}

// move is one partition's checkpoint move: its field in the offsets hash,
// the "<epoch>:<next>" the commit expects there and the one it stores.
type move struct{ field, want, next string }

// checkpointMoves moves each partition of to from from (absent: -1) to
// to, at its claim epoch, in partition order.
func checkpointMoves(epochs map[connector.TopicPartition]int64, from, to connector.Checkpoint) ([]move, error) {
	tps := to.Partitions()
	moves := make([]move, len(tps))
	for i, tp := range tps {
		epoch, ok := epochs[tp]
		if !ok {
			return nil, connector.NewCommitError(connector.Fatal, "commit", &missingClaimError{tp})
		}
		g := strconv.FormatInt(epoch, 10)
		want := int64(-1)
		if f, ok := from[tp]; ok {
			want = f
		}
		moves[i] = move{tp.String(), g + ":" + strconv.FormatInt(want, 10), g + ":" + strconv.FormatInt(to[tp], 10)}
	}
	return moves, nil
}

type missingClaimError struct{ tp connector.TopicPartition }

func (e *missingClaimError) Error() string {
	return "no claim for partition " + e.tp.String()
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
