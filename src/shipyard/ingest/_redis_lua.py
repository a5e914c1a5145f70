"""The Lua scripts of the Redis Streams backend: each change to a stream is one atomic script.

They rely on the key layout ``redis_stream`` documents: ``KEYS[1]`` is the stream's meta hash
(or the registry set for create and delete), the other keys are shard streams. Numbers written
back to Redis go through ``string.format('%d', ...)``: Lua 5.1 would print 1e+15 otherwise.
PUT writes each entry's fields in the order ``d`` (payload), ``t`` (arrival ms), ``o`` (bytes
before it), and READ and TRIM read them by position (``f[2]``, ``f[4]``, ``f[6]``). Errors the
Python side reads start with ``SHIPYARD_``.
"""

from __future__ import annotations

CREATE = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
for i = 3, #KEYS do
  -- an empty stream whose last ID is 0-0, so the first 0-* entry is 0-1 (sequence 0)
  redis.call('XGROUP', 'CREATE', KEYS[i], 'init', '$', 'MKSTREAM')
  redis.call('XGROUP', 'DESTROY', KEYS[i], 'init')
end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

DELETE = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
for i = 2, #KEYS do redis.call('UNLINK', KEYS[i]) end
return 1
"""

_GONE = "if redis.call('HGET', KEYS[1], 'incarnation') ~= ARGV[1] then " \
        "return redis.error_reply('SHIPYARD_GONE') end\n"  # fmt: skip

# KEYS: meta, then the shards' streams. ARGV: incarnation, arrival ms, shard ids (one per
# stream key), record counts (one per stream key), then the payloads grouped by shard.
PUT = (
    _GONE
    + """
local n = #KEYS - 1
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return redis.error_reply('SHIPYARD_GONE') end
end
local at, firsts = 3 + 2 * n, {}
for i = 1, n do
  local shard, count = ARGV[2 + i], tonumber(ARGV[2 + n + i])
  local written = tonumber(redis.call('HGET', KEYS[1], 'written:' .. shard))
  local id
  for j = at, at + count - 1 do
    id = redis.call('XADD', KEYS[i + 1], 'NOMKSTREAM', '0-*', 'd', ARGV[j], 't', ARGV[2],
                    'o', string.format('%d', written))
    if j == at then firsts[i] = tonumber(string.sub(id, 3)) - 1 end
    written = written + #ARGV[j]
  end
  at = at + count
  redis.call('HSET', KEYS[1], 'end:' .. shard, string.sub(id, 3),
             'written:' .. shard, string.format('%d', written))
end
return firsts
"""
)

# KEYS: meta, stream. ARGV: incarnation, start ID, records wanted, byte budget.
# Returns {first ID, last ID, payloads, arrival runs as (ms, count) pairs, more?} or {}: one
# flat reply (table.concat of the payloads would be slower still in Redis's Lua 5.1).
READ = (
    _GONE
    + """
local start, want, budget = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local payloads, runs = {}, {}
local got, bytes, step, more = 0, 0, 16, 0
local first, last, run_at, run_n
while got < want do
  if bytes >= budget then more = 1; break end
  local asked = math.min(step, want - got)
  local entries = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', asked)
  for _, entry in ipairs(entries) do
    local f = entry[2]
    got = got + 1
    payloads[got] = f[2]
    bytes = bytes + #f[2]
    if f[4] == run_at then run_n = run_n + 1 else
      if run_at then runs[#runs + 1] = run_at; runs[#runs + 1] = run_n end
      run_at, run_n = f[4], 1
    end
  end
  if #entries > 0 then
    first = first or entries[1][1]
    last = entries[#entries][1]
    start = '(' .. last
  end
  if #entries < asked then break end
  -- size the next XRANGE so that it stays within the budget (entries may be 16 MB each)
  step = math.max(1, math.min(4096, math.floor((budget - bytes) * got / math.max(bytes, 1))))
end
if got == 0 then return {} end
runs[#runs + 1] = run_at; runs[#runs + 1] = run_n
return {first, last, payloads, runs, more}
"""
)

# KEYS: meta, stream. ARGV: incarnation, shard, cutoff ms, byte limit (-1: none), keep_from.
TRIM = (
    _GONE
    + """
local s = ARGV[2]
local first = tonumber(redis.call('HGET', KEYS[1], 'first:' .. s))
local held_end = tonumber(redis.call('HGET', KEYS[1], 'end:' .. s))
local written = tonumber(redis.call('HGET', KEYS[1], 'written:' .. s))
local cutoff, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local stop = math.min(held_end, tonumber(ARGV[5]))
if stop <= first then return 0 end
local function fields(seq)
  local id = string.format('0-%d', seq + 1)
  local found = redis.call('XRANGE', KEYS[2], id, id)
  if #found == 0 then error({err = 'SHIPYARD_HOLE ' .. string.format('%d', seq)}) end
  return found[1][2]
end
-- the first sequence in [first, stop) for which keep(fields) holds; stop if none
local function search(keep)
  local lo, hi = first, stop
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if keep(fields(mid)) then hi = mid else lo = mid + 1 end
  end
  return lo
end
local from = search(function(f) return tonumber(f[4]) >= cutoff end)
if limit >= 0 then
  from = math.max(from, search(function(f) return written - tonumber(f[6]) <= limit end))
end
if from <= first then return 0 end
local trimmed = written
if from < held_end then trimmed = tonumber(fields(from)[6]) end
local dropped = redis.call('XTRIM', KEYS[2], 'MINID', string.format('0-%d', from + 1))
redis.call('HSET', KEYS[1], 'first:' .. s, string.format('%d', from),
           'trimmed:' .. s, string.format('%d', trimmed))
return dropped
"""
)

# KEYS: meta. ARGV: incarnation, shard, group, next sequence.
COMMIT = (
    _GONE
    + """
local last = tonumber(redis.call('HGET', KEYS[1], 'end:' .. ARGV[2]))
if tonumber(ARGV[4]) > last then
  return redis.error_reply('SHIPYARD_RANGE ' .. string.format('%d', last))
end
redis.call('HSET', KEYS[1], 'offset:' .. ARGV[3] .. ':' .. ARGV[2], ARGV[4])
return 1
"""
)
