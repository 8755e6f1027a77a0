-- Fills Redis with the demo's hosts: sorted sets `perf:host-NNNN` (ARGV[1] of them) of ARGV[2] JSON samples each,
-- ARGV[4] ms apart, scored by their time, with the collector's fields padded to about ARGV[3] bytes (870: the size
-- of `replicast collect --simulate`'s samples). Run by bench/full-sync.sh and bench/state-memory.sh with
-- `redis-cli EVAL "$(cat bench/demo-samples.lua)" 0 HOSTS SAMPLES BYTES STEP_MS`; returns DBSIZE.
for h = 0, tonumber(ARGV[1]) - 1 do
  local key = string.format('perf:host-%04d', h)
  for s = 0, tonumber(ARGV[2]) - 1 do
    local t = 1700000000000 + s * tonumber(ARGV[4])
    local sample = string.format(
      '{"id":"%s:%d","t":%d,"host":"host-%04d","cpu":{"total":%d},"mem":{"used":%d},' ..
      '"load":[0.5,0.25,0.1],"procs":[{"pid":1234,"name":"redis-server","cpu":3.2}]',
      key, t, t, h, (h + s) % 100, t % 8000000000)
    local pad = tonumber(ARGV[3]) - #sample - 12
    if pad > 0 then sample = sample .. ',"pad":"' .. string.rep('x', pad) .. '"' end
    redis.call('ZADD', key, t, sample .. '}')
  end
end
return redis.call('DBSIZE')
