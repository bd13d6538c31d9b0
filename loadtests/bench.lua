-- wrk script of `make bench` (loadtests/bench_procs.py): GET requests to uniformly random
-- lines of the file named by $BENCH_PATHS, and one JSON line of results when wrk is done.

local prepared = {}
local count = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  -- Formatted once per thread (with the -H headers), so request() is one table lookup and
  -- wrk stays fast enough to saturate the server.
  for path in io.lines(os.getenv("BENCH_PATHS")) do
    count = count + 1
    prepared[count] = wrk.format("GET", path)
  end
  -- A generator per thread: threads walking one sequence would tap the same code twice in
  -- quick succession and turn cache misses into hits.
  math.randomseed(os.time() * 1000 + (thread_number or 0) * 7919)
end

function request()
  return prepared[math.random(count)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"socket_errors": %d, "bad_status": %d}\n',
    summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
