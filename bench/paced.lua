-- wrk script: each connection waits PACE_MS (default 40) between requests, so
-- `wrk -t1 -c4 -s bench/paced.lua` asks at most 100 times a second: a room full of
-- dashboards and scrapers watching, not a load test.
local pace = tonumber(os.getenv("PACE_MS") or "40")

function delay()
  return pace
end
