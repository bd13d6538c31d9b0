-- wrk script of `make bench` (loadtests/bench_procs.py): GET requests to the lines of the file
-- named by $BENCH_PATHS, taken in turn, each with a User-Agent drawn at random from the lines
-- of $BENCH_USER_AGENTS; one JSON line of results when wrk is done.

local lines = {}  -- "GET /path HTTP/1.1\r\n" per path
local tails = {}  -- the headers after it, one set per User-Agent
local next_line = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  -- Formatted once per thread, so that request() is two lookups and a concatenation and wrk
  -- stays fast enough to saturate the server.
  for path in io.lines(os.getenv("BENCH_PATHS")) do
    lines[#lines + 1] = "GET " .. path .. " HTTP/1.1\r\n"
  end
  for agent in io.lines(os.getenv("BENCH_USER_AGENTS")) do
    local request = wrk.format("GET", "/", {["User-Agent"] = agent})
    tails[#tails + 1] = request:sub(request:find("\r\n", 1, true) + 2)
  end
  -- Each thread (wrk's `-- THREADS` argument says how many) starts its walk at its own share
  -- of the paths: threads walking from one place would tap each code twice in quick
  -- succession and turn cache misses into hits.
  local count = tonumber(args[1]) or 1
  next_line = math.floor(((thread_number or 1) - 1) * #lines / count)
  math.randomseed(os.time() * 1000 + (thread_number or 0) * 7919)
end

function request()
  next_line = next_line % #lines + 1
  return lines[next_line] .. tails[math.random(#tails)]
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
