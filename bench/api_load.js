// Open-loop load at a constant arrival rate on GET /v1/users/{id}/scores (Node's http module, no dependencies).
// Request i is due at start + i/rate; latency runs from that due time to the end of the response, so a stalled
// server is not hidden by the generator waiting for it (no coordinated omission).
// usage: node api_load.js <base url> <key> <rate> <seconds> <ids file> [<latencies out>] [<path template>]
// (<path template>: default /v1/users/{id}/scores; {id} is replaced by each user id)
// Prints one JSON line: counts per status code, failed requests per error code, the first 20 non-2xx answers in
// full, and rough percentiles; <latencies out> gets every request's latency in microseconds, one per line, from
// which bench/latency.py computes the published percentiles (HDR histogram).
const http = require('http')
const fs = require('fs')
const [base, key, rateArg, secondsArg, idsFile, latenciesOut, template] = process.argv.slice(2)
const pathOf = (id) => (template || '/v1/users/{id}/scores').replace('{id}', encodeURIComponent(id))
const rate = Number(rateArg), seconds = Number(secondsArg)
const ids = fs.readFileSync(idsFile, 'utf8').split('\n').filter(Boolean)
const url = new URL(base)
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
const total = Math.round(rate * seconds)
const latencies = []
const statuses = {}  // answers per HTTP status code
const errorKinds = {}  // failed requests (no answer) per error code
const samples = []  // the first non-2xx answers in full: status, path, body
let sent = 0, done = 0, non2xx = 0, errors = 0
const start = process.hrtime.bigint()
const elapsedMs = () => Number(process.hrtime.bigint() - start) / 1e6

function send(i) {
  const due = (i * 1000) / rate
  const req = http.request({
    host: url.hostname, port: url.port, path: pathOf(ids[i % ids.length]),
    agent, headers: { 'x-api-key': key },
  }, (res) => {
    const ok = res.statusCode >= 200 && res.statusCode < 300
    const chunks = []
    res.on('data', (c) => { if (!ok) chunks.push(c) })
    res.on('end', () => {
      latencies.push(elapsedMs() - due)
      statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1
      if (!ok) {
        non2xx++
        if (samples.length < 20) {
          samples.push({ status: res.statusCode, path: req.path, at_ms: Number(elapsedMs().toFixed(1)),
            body: Buffer.concat(chunks).toString('utf8').slice(0, 2000) })
        }
      }
      finish()
    })
  })
  req.on('error', (err) => {
    errors++
    errorKinds[err.code || err.message] = (errorKinds[err.code || err.message] || 0) + 1
    finish()
  })
  req.end()
}

function finish() {
  done++
  if (done < total) return
  if (latenciesOut) fs.writeFileSync(latenciesOut, latencies.map((ms) => Math.round(ms * 1000)).join('\n') + '\n')
  latencies.sort((a, b) => a - b)
  const q = (p) => Number(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2))
  console.log(JSON.stringify({
    requests: done, rps: Number((done / (elapsedMs() / 1000)).toFixed(1)), non2xx, errors,
    statuses, error_kinds: errorKinds, non2xx_samples: samples,
    p50_ms: q(0.5), p90_ms: q(0.9), p99_ms: q(0.99), max_ms: q(1),
    mean_ms: Number((latencies.reduce((a, b) => a + b, 0) / latencies.length).toFixed(2)),
  }))
  agent.destroy()
}

function tick() {
  const due = Math.min(total, Math.floor((elapsedMs() * rate) / 1000) + 1)
  while (sent < due) send(sent++)
  if (sent < total) setTimeout(tick, 1)
}
tick()
