-- wrk script for POST /payment: varies the body (cards, devices, amounts, merchants, channels,
-- currencies), counts 201 and non-201 responses per thread, and prints one machine-readable
-- line from done() with the exact latency percentiles (wrk's --latency table has no p95).
-- LuaJIT (wrk's Lua): no integer division operator.
-- Usage: wrk -t1 -c32 -d10s --latency -s benchmarks/payment.lua http://127.0.0.1:PORT

local thread_count = 0
local threads = {}

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

local merchants = {"Amazon", "Tesco", "Uber", "Netflix", "Shell", "Apple", "Zara", "IKEA",
                   "Deliveroo", "Booking.com", "Steam", "Argos"}
local channels = {"ecommerce", "mobile", "pos", "contactless", "moto"}
local currencies = {"GBP", "GBP", "GBP", "GBP", "EUR", "USD"}
local headers = {["Content-Type"] = "application/json"}

function init(args)
  created = 0
  other = 0
  math.randomseed(7919 * (tid or 1))
end

function request()
  local card = string.format("4%03d%012d", math.random(0, 999), math.random(1, 5000))
  local cents
  if math.random() < 0.15 then
    cents = math.random(50001, 250000)   -- above the 500 threshold
  else
    cents = math.random(100, 50000)
  end
  local device = ""
  if math.random() < 0.9 then
    device = string.format(',"device_id":"dev-%d"', math.random(1, 3000))
  end
  local body = string.format(
    '{"card_number":"%s","amount":%d.%02d,"currency":"%s","merchant":"%s","channel":"%s"%s}',
    card, math.floor(cents / 100), cents % 100, currencies[math.random(#currencies)],
    merchants[math.random(#merchants)], channels[math.random(#channels)], device)
  return wrk.format("POST", "/payment", headers, body)
end

function response(status, hdrs, body)
  if status == 201 then
    created = created + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local c, o = 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    "PTSIM_RESULT created=%d other=%d requests=%d duration_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d " ..
    "p50_us=%.1f p90_us=%.1f p95_us=%.1f p99_us=%.1f max_us=%.1f\n",
    c, o, summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
end
