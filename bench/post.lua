-- wrk script: POST a small chat completion, then print one machine-readable
-- RESULT line. BENCH_STREAM=1 asks for SSE; BENCH_KEY sets the bearer key;
-- BENCH_BODY_FILE, when set, is the body to send instead (bench/prompt.py).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local key = os.getenv("BENCH_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

local stream = os.getenv("BENCH_STREAM") == "1"
local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  local file = assert(io.open(body_file, "rb"))
  wrk.body = file:read("*a")
  file:close()
else
  wrk.body = '{"model":"bench-model","stream":' .. (stream and "true" or "false")
    .. ',"messages":[{"role":"user","content":"Say hello in five words."}]}'
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_us=%d p99_us=%d requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / seconds,
    latency:percentile(50),
    latency:percentile(99),
    summary.requests,
    errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
