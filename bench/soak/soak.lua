-- soak.lua — wrk script for bench/bench_soak.sh.
--   SOAK_BODY=<file>   POST that file as the body (Content-Type SOAK_TYPE, default image/jpeg)
--   SOAK_PATHS="p q"   otherwise: GET these paths in turn (each connection starts at a
--                      different one); the URL given to wrk is used when unset
-- done() prints one line "SOAK_JSON {...}" with the counts and latencies (ms)
-- that the script reads, so nothing depends on the layout of wrk's report.
local body_file = os.getenv("SOAK_BODY")
local paths = {}
for p in (os.getenv("SOAK_PATHS") or ""):gmatch("%S+") do paths[#paths + 1] = p end

local reqs, n = {}, 0

function init(args)
    if body_file and body_file ~= "" then
        local f = assert(io.open(body_file, "rb"))
        wrk.method = "POST"
        wrk.body = f:read("*all")
        f:close()
        wrk.headers["Content-Type"] = os.getenv("SOAK_TYPE") or "image/jpeg"
        reqs[1] = wrk.format()
    elseif #paths > 0 then
        for i, p in ipairs(paths) do reqs[i] = wrk.format("GET", p) end
    else
        reqs[1] = wrk.format()
    end
    n = math.random(#reqs) - 1
end

function request()
    n = n % #reqs + 1
    return reqs[n]
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'SOAK_JSON {"requests": %d, "seconds": %.3f, "bytes": %d, "p50_ms": %.3f, ' ..
        '"p99_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f, "non_2xx": %d, "connect": %d, ' ..
        '"read": %d, "write": %d, "timeout": %d}\n',
        summary.requests, summary.duration / 1e6, summary.bytes,
        latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
        latency.mean / 1e3, e.status, e.connect, e.read, e.write, e.timeout))
end
