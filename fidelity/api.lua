-- wrk script of `asgibench fidelity` (asgibench/fidelity.py builds the command line):
--   wrk -t1 -c10 -d15s --timeout 10s -s fidelity/api.lua http://127.0.0.1:PORT -- /api/clowncollege/ /api/troupe/
-- Each request is the next path of the list given after `--` (the API-only flow's endpoints, from
-- benchcontract: the same ones Locust's ApiOnlyUser requests, in the same order), so the endpoints get
-- equal shares, as in Locust's iterations. done() prints one machine-readable line, parsed by
-- fidelity.parse_wrk: completed requests, the run's duration, socket errors, non-2xx/3xx responses.
local paths = {}
local counter = 0

function init(args)
  for _, p in ipairs(args) do
    paths[#paths + 1] = p
  end
  if #paths == 0 then
    paths[1] = "/"
  end
end

function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter - 1) % #paths + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'FIDELITY_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
