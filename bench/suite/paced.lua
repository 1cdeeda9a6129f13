-- Fallback fixed-rate load for bench/suite.sh when oha cannot be built: each of wrk's
-- connections waits SUITE_DELAY_MS between a response and its next request, so C
-- connections send about C * 1000 / SUITE_DELAY_MS requests a second (the server's own
-- latency, tens of microseconds here, makes it a little less). Prints the SUITE line of
-- wrk.lua.
local delay_ms = tonumber(os.getenv("SUITE_DELAY_MS") or "32")

function delay()
   return delay_ms
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "SUITE requests=%d duration_us=%d status_errors=%d connect=%d read=%d write=%d timeout=%d " ..
      "p50=%d p90=%d p99=%d p999=%d max=%d mean=%.1f wrapped=0 tokens_used=0\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end
