-- wrk script: POSTs AdmissionReview bodies round-robin.
-- usage: wrk ... -s bench/post.lua URL -- /mutate=bodies/a.json /validate=bodies/b.json ...
-- done() prints the figures wrk's own summary lacks (p99.9, exact request and error counts)
-- as `bench:` lines that bench/run.sh reads.
local requests = {}
local index = 0

function init(args)
  for _, arg in ipairs(args) do
    local path, file = arg:match("^([^=]+)=(.+)$")
    local handle = assert(io.open(file, "rb"))
    local body = handle:read("*a")
    handle:close()
    table.insert(requests, wrk.format("POST", path,
      {["Content-Type"] = "application/json", ["Host"] = "rollout-guard.bench.svc"}, body))
  end
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("bench: requests=%d duration_us=%d rps=%.1f\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6)))
  io.write(string.format("bench: p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
  io.write(string.format("bench: errors connect=%d read=%d write=%d status=%d timeout=%d\n",
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
