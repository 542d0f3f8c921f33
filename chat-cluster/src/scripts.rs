//! The Lua scripts that make each cluster step atomic in Redis (one script runs alone: no other
//! command sees half of it), in the manner of Centrifugo's Redis engine.
//!
//! Keys (`P` is the prefix, `chat:` by default; room names are `[a-z0-9_-]`, user names have no
//! control characters, so `\n` separates them safely):
//!
//! | key | type | what |
//! |---|---|---|
//! | `P epoch` | string | the cluster's epoch, set once (`SET NX`) by the first node |
//! | `P seq:ROOM` | string | the room's last message id (`INCR`) |
//! | `P log:ROOM` | stream | the room's messages, entry id `ID-0`, capped at about the history size |
//! | `P deleted:ROOM` | hash | id → `USER\nTS` of messages an admin deleted (their entries left the log) |
//! | `P dedup:ROOM:LEN:USER:KEY` | string | the id a `client_msg_id` got, for a day |
//! | `P members:ROOM` | hash | user → open connections, cluster-wide |
//! | `P node:NODE` | hash | `ROOM\nUSER` → open connections on that node |
//! | `P nodes` | sorted set | node → last heartbeat, in Redis's own clock (ms) |
//! | channel `P r:ROOM` | pub/sub | the room's events, in publish order |

use redis::Script;

/// Publishes a chat message: the room's next id, the entry in its log, the dedup key, and the
/// event on its channel, in one step; a `client_msg_id` seen before gets its original id and
/// nothing else happens.
///
/// KEYS: seq, log, epoch, dedup (absent without a `client_msg_id`).
/// ARGV: channel, user, text, timestamp ms, client_msg_id or "", max log length, the event's
/// JSON after its id and epoch (`,"u":...}`).
/// Returns `{id, duplicate, epoch}`: the epoch the id belongs to travels with it, so no node
/// can label it with an older one.
pub(crate) fn publish() -> Script {
    Script::new(
        r#"
local epoch = redis.call('GET', KEYS[3]) or '0'
local dedup = KEYS[4]
if dedup then
  local old = redis.call('GET', dedup)
  if old then return {tonumber(old), 1, epoch} end
end
local id = redis.call('INCR', KEYS[1])
if ARGV[5] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], id .. '-0',
    'u', ARGV[2], 't', ARGV[3], 'ts', ARGV[4], 'c', ARGV[5])
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], id .. '-0',
    'u', ARGV[2], 't', ARGV[3], 'ts', ARGV[4])
end
if dedup then redis.call('SET', dedup, id, 'EX', 86400) end
redis.call('PUBLISH', ARGV[1], '{"k":"m","id":' .. id .. ',"e":' .. epoch .. ARGV[7])
return {id, 0, epoch}
"#,
    )
}

/// An admin's deletion: the entry leaves the room's log (its text is gone from Redis), a
/// tombstone keeps its id, sender and time (`P deleted:ROOM`, id → `USER\nTS`) so reads still
/// show the message as deleted, and every node hears `del`. KEYS: log, tombstones. ARGV: id,
/// channel. Returns 1 when the log still had the entry.
pub(crate) fn delete() -> Script {
    Script::new(
        r#"
local id = ARGV[1]
local entry = redis.call('XRANGE', KEYS[1], id .. '-0', id .. '-0')
if #entry > 0 then
  local fields = entry[1][2]
  local user, ts = '', '0'
  for i = 1, #fields, 2 do
    if fields[i] == 'u' then user = fields[i + 1] elseif fields[i] == 'ts' then ts = fields[i + 1] end
  end
  redis.call('HSET', KEYS[2], id, user .. '\n' .. ts)
  redis.call('XDEL', KEYS[1], id .. '-0')
end
redis.call('PUBLISH', ARGV[2], '{"k":"del","id":' .. id .. '}')
return #entry
"#,
    )
}

/// One more connection of a user in a room on this node: the room hears `conn` (for clients
/// that announce every connection), then `join` when it is the user's first anywhere.
/// KEYS: members, node. ARGV: user, `ROOM\nUSER`, channel, node name.
/// Returns the user's connections in the room, cluster-wide.
pub(crate) fn join() -> Script {
    Script::new(
        r#"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('PUBLISH', ARGV[3], cjson.encode({k = 'conn', u = ARGV[1], j = true, n = ARGV[4]}))
if n == 1 then redis.call('PUBLISH', ARGV[3], cjson.encode({k = 'join', u = ARGV[1]})) end
return n
"#,
    )
}

/// One connection fewer: the room hears `conn`, then `leave` when it was the user's last
/// anywhere. A leave this node no longer holds (a reaper took its entries while it was away)
/// changes nothing. KEYS: members, node. ARGV: user, `ROOM\nUSER`, channel, node name.
/// Returns the connections left, or -1 when there was nothing to leave.
pub(crate) fn leave() -> Script {
    Script::new(
        r#"
local c = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
if c <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
if c < 0 then return -1 end
redis.call('PUBLISH', ARGV[3], cjson.encode({k = 'conn', u = ARGV[1], j = false, n = ARGV[4]}))
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[3], cjson.encode({k = 'leave', u = ARGV[1]}))
end
return n
"#,
    )
}

/// The shared part of `sync` and `reap`: moves a user's count in a room by `delta` and tells the
/// room when the user appears or disappears.
const ADJUST: &str = r#"
local function adjust(prefix, field, delta)
  local sep = string.find(field, '\n', 1, true)
  if not sep then return end
  local room = string.sub(field, 1, sep - 1)
  local user = string.sub(field, sep + 1)
  local key = prefix .. 'members:' .. room
  local before = tonumber(redis.call('HGET', key, user) or '0')
  local after = before + delta
  if after <= 0 then redis.call('HDEL', key, user) else redis.call('HSET', key, user, after) end
  if before <= 0 and after > 0 then
    redis.call('PUBLISH', prefix .. 'r:' .. room, cjson.encode({k = 'join', u = user}))
  elseif before > 0 and after <= 0 then
    redis.call('PUBLISH', prefix .. 'r:' .. room, cjson.encode({k = 'leave', u = user}))
  end
end
"#;

/// Makes this node's presence in Redis what the node says it is (after a reconnect, or when a
/// reaper took it for dead), adjusting the rooms' counts by the difference only, and beats.
/// KEYS: node, nodes. ARGV: prefix, node name, N, then N pairs of `ROOM\nUSER`, count.
pub(crate) fn sync() -> Script {
    Script::new(&format!(
        r#"{ADJUST}
local old = {{}}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do old[entries[i]] = tonumber(entries[i + 1]) end
local new = {{}}
local n = tonumber(ARGV[3])
for i = 0, n - 1 do new[ARGV[4 + 2 * i]] = tonumber(ARGV[5 + 2 * i]) end
for field, count in pairs(old) do
  local delta = (new[field] or 0) - count
  if delta ~= 0 then adjust(ARGV[1], field, delta) end
end
for field, count in pairs(new) do
  if old[field] == nil then adjust(ARGV[1], field, count) end
end
redis.call('DEL', KEYS[1])
for field, count in pairs(new) do redis.call('HSET', KEYS[1], field, count) end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[2])
return n
"#
    ))
}

/// The heartbeat: this node is alive now (Redis's clock). Returns 1 when the node was not in the
/// set (a first beat, or a reaper took it for dead, or Redis lost its data): the node must sync.
/// KEYS: nodes, node. ARGV: node name.
pub(crate) fn beat() -> Script {
    Script::new(
        r#"
local t = redis.call('TIME')
local added = redis.call('ZADD', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
return added
"#,
    )
}

/// Takes every node whose last beat is older than `dead_after_ms` for dead: its users leave
/// their rooms (a `leave` where it was their last connection) and it is forgotten. A node never
/// reaps itself. KEYS: nodes. ARGV: prefix, dead_after_ms, this node. Returns the nodes reaped.
pub(crate) fn reap() -> Script {
    Script::new(&format!(
        r#"{ADJUST}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local reaped = 0
for _, node in ipairs(dead) do
  if node ~= ARGV[3] then
    local key = ARGV[1] .. 'node:' .. node
    local entries = redis.call('HGETALL', key)
    for i = 1, #entries, 2 do adjust(ARGV[1], entries[i], -tonumber(entries[i + 1])) end
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], node)
    reaped = reaped + 1
  end
end
return reaped
"#
    ))
}
