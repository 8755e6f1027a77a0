-- Fills one batch of the mixed benchmark data set (bench/rdb/make-dumps.sh calls it many times).
-- ARGV[1] = batch number. Values are slices of a pool of random bytes, so that the RDB's LZF compression finds
-- little to gain, as with real data; a few values are repetitive on purpose, so that some strings are compressed.
local batch = tonumber(ARGV[1])
math.randomseed(batch + 1)
local pool = {}
for i = 1, 64 do
  local bytes = {}
  for j = 1, 1024 do bytes[j] = string.char(math.random(0, 255)) end
  pool[i] = table.concat(bytes)
end
local function blob(n)
  local p = pool[math.random(1, 64)]
  local at = math.random(1, 1024 - math.min(n, 1023))
  return string.sub(p, at, at + n - 1)
end
local prefix = 'b' .. batch .. ':'
-- 20,000 small strings, some integers, some with a TTL.
for i = 1, 20000 do
  local k = prefix .. 'str:' .. i
  if i % 5 == 0 then
    redis.call('SET', k, tostring(i * 7919))
  else
    redis.call('SET', k, blob(math.random(20, 200)))
  end
  if i % 10 == 0 then redis.call('PEXPIRE', k, 86400000 + i) end
end
-- 4,000 small hashes (listpack) and 1 big hash (hashtable).
for i = 1, 4000 do
  local k = prefix .. 'hash:' .. i
  for f = 1, 10 do redis.call('HSET', k, 'field' .. f, blob(math.random(5, 40))) end
end
for f = 1, 20000 do redis.call('HSET', prefix .. 'bighash', 'f' .. f, blob(30)) end
-- 4,000 small sorted sets (listpack) and 1 big one (skiplist).
for i = 1, 4000 do
  local k = prefix .. 'zset:' .. i
  for m = 1, 10 do redis.call('ZADD', k, math.random() * 1000, 'member' .. m .. blob(8)) end
end
for m = 1, 20000 do redis.call('ZADD', prefix .. 'bigzset', math.random() * 1e6, blob(24)) end
-- 2,000 intsets, 2,000 small string sets, 1 big set (hashtable).
for i = 1, 2000 do
  for m = 1, 20 do redis.call('SADD', prefix .. 'iset:' .. i, math.random(1, 1000000)) end
  for m = 1, 10 do redis.call('SADD', prefix .. 'sset:' .. i, blob(16)) end
end
for m = 1, 20000 do redis.call('SADD', prefix .. 'bigset', blob(20)) end
-- 500 lists of 100 elements, one list of 20,000.
for i = 1, 500 do
  local k = prefix .. 'list:' .. i
  for e = 1, 100 do redis.call('RPUSH', k, blob(math.random(10, 150))) end
end
for e = 1, 20000 do redis.call('RPUSH', prefix .. 'biglist', blob(100)) end
-- 4 streams of 5,000 entries with a consumer group.
for s = 1, 4 do
  local k = prefix .. 'stream:' .. s
  for e = 1, 5000 do redis.call('XADD', k, '*', 'host', 'h' .. (e % 16), 'cpu', tostring(math.random() * 100), 'payload', blob(60)) end
  redis.call('XGROUP', 'CREATE', k, 'g', '0')
  redis.call('XREADGROUP', 'GROUP', 'g', 'c1', 'COUNT', 100, 'STREAMS', k, '>')
end
-- 20 big strings, half of them compressible.
for i = 1, 20 do
  if i % 2 == 0 then
    redis.call('SET', prefix .. 'big:' .. i, string.rep(blob(100), 2000))
  else
    local parts = {}
    for j = 1, 200 do parts[j] = blob(1000) end
    redis.call('SET', prefix .. 'big:' .. i, table.concat(parts))
  end
end
return batch
