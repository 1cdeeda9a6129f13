-- bench/suite.sh's wrk script. done() prints one machine-readable line:
--   SUITE requests=… duration_us=… status_errors=… connect=… read=… write=… timeout=…
--         p50=… p90=… p99=… p999=… max=… mean=… wrapped=… tokens_used=…
-- (latencies in µs; status_errors counts answers with a status above 399).
--
-- With SUITE_TOKENS=FILE in the environment, every request carries the next line of FILE as
-- `Authorization: Bearer <line>`, round robin; `wrapped` says how many times a thread came
-- back to the file's start (0: no token was sent twice by that thread). SUITE_TOKEN_START
-- skips that many lines first. Without it the script defines no request(), so wrk stays on
-- its static path (a header given with -H).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local token_file = os.getenv("SUITE_TOKENS")
if token_file and token_file ~= "" then
   local file
   local headers = {}
   wrapped = 0
   tokens_used = 0

   function init(args)
      file = assert(io.open(token_file, "r"))
      for k, v in pairs(wrk.headers) do headers[k] = v end
      local skip = tonumber(os.getenv("SUITE_TOKEN_START") or "0")
      for _ = 1, skip do file:read("*l") end
   end

   function request()
      local token = file:read("*l")
      if not token or token == "" then
         wrapped = wrapped + 1
         file:seek("set", 0)
         token = file:read("*l")
      end
      tokens_used = tokens_used + 1
      headers["Authorization"] = "Bearer " .. token
      return wrk.format(nil, nil, headers)
   end
end

function done(summary, latency, requests)
   local w, used = 0, 0
   for _, t in ipairs(threads) do
      w = w + (tonumber(t:get("wrapped")) or 0)
      used = used + (tonumber(t:get("tokens_used")) or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "SUITE requests=%d duration_us=%d status_errors=%d connect=%d read=%d write=%d timeout=%d " ..
      "p50=%d p90=%d p99=%d p999=%d max=%d mean=%.1f wrapped=%d tokens_used=%d\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean, w, used))
end
