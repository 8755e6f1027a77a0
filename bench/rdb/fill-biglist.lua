-- Appends ARGV[2] random 256-byte elements to the list KEYS[1] (bench/rdb/make-dumps.sh calls it until the
-- list holds 1 GB). Elements are picked from a pool of random strings, so quicklist nodes do not compress.
math.randomseed(tonumber(ARGV[1]))
local pool = {}
for i = 1, 1024 do
  local bytes = {}
  for j = 1, 256 do bytes[j] = string.char(math.random(0, 255)) end
  pool[i] = table.concat(bytes)
end
local n = tonumber(ARGV[2])
for i = 1, n do redis.call('RPUSH', KEYS[1], pool[math.random(1, 1024)]) end
return redis.call('LLEN', KEYS[1])
