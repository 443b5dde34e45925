/**
 * The Lua scripts RedisState runs. Each is one atomic step on the Redis server (ioredis
 * defineCommand sends EVALSHA, and the script body once after a NOSCRIPT), so two replicas
 * taking from the same bucket at the same instant cannot both spend its last token.
 *
 * Time comes from the Redis server (TIME), not from the replicas: buckets refill by one clock
 * even when the replicas' clocks disagree.
 */

/**
 * KEYS: one hash per bucket. ARGV: requests, per_ms, burst for each key, in order.
 * Same semantics as policy/ratelimit.ts: every bucket is refilled and checked before any is
 * charged; a bucket whose parameters changed (rules reloaded with another limit) starts full;
 * a bucket is dropped (PEXPIRE) once it would be full again anyway.
 * Returns {0} when every bucket gave a token, else {i, tokens} for the first empty bucket i
 * (tokens as a string: Lua numbers become integers on the way back).
 */
export const TAKE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local tokens = {}
local specs = {}
for i = 1, n do
  local requests = tonumber(ARGV[(i - 1) * 3 + 1])
  local per = tonumber(ARGV[(i - 1) * 3 + 2])
  local burst = tonumber(ARGV[(i - 1) * 3 + 3])
  local spec = requests .. '/' .. per .. '/' .. burst
  local h = redis.call('HMGET', KEYS[i], 'tokens', 'at', 'spec')
  local tk = burst
  if h[1] and h[3] == spec then
    tk = math.min(burst, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * requests / per)
  end
  if tk < 1 then
    return {i, tostring(tk)}
  end
  tokens[i] = tk
  specs[i] = {spec, math.ceil(per * burst / requests) + 1000}
end
for i = 1, n do
  redis.call('HSET', KEYS[i], 'tokens', tostring(tokens[i] - 1), 'at', now, 'spec', specs[i][1])
  redis.call('PEXPIRE', KEYS[i], specs[i][2])
end
return {0}
`;

/**
 * KEYS[1]: the revocation sorted set (member id, score = the handle's expiry in seconds).
 * ARGV: id, exp, channel. Durable first, then announced: a replica that misses the message
 * (reconnecting) reads the set when it is back.
 */
export const REVOKE_LUA = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1] .. ' ' .. ARGV[2])
return 1
`;

/**
 * KEYS[1]: hash id → record JSON; KEYS[2]: sorted set id by expiry. ARGV: id, json, exp,
 * prune_before. Records of handles expired before prune_before are dropped (100 at a time),
 * so the hash does not grow forever.
 */
export const ISSUE_LUA = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4], 'LIMIT', 0, 100)
for _, id in ipairs(old) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return 1
`;
