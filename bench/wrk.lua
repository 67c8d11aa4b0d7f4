-- wrk script for bench §2. WRK_TARGET (an absolute URL) makes wrk talk to a forward
-- proxy: the request line carries the absolute-form target and Host names the origin,
-- as an HTTP_PROXY client sends it. done() prints one JSON line of results.
local target = os.getenv("WRK_TARGET")
if target and target ~= "" then
   wrk.path = target
   wrk.headers["Host"] = target:match("^%a+://([^/]+)")
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,' ..
      '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"p50_us":%d,' ..
      '"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.mean,
      latency.max))
end
