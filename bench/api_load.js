// Open-loop load at a constant arrival rate on GET /v1/users/{id}/scores (Node's http module, no dependencies).
// Request i is due at start + i/rate; latency runs from that due time to the end of the response, so a stalled
// server is not hidden by the generator waiting for it (no coordinated omission).
// usage: node api_load.js <base url> <key> <rate> <seconds> <ids file>
const http = require('http')
const fs = require('fs')
const [base, key, rateArg, secondsArg, idsFile] = process.argv.slice(2)
const rate = Number(rateArg), seconds = Number(secondsArg)
const ids = fs.readFileSync(idsFile, 'utf8').split('\n').filter(Boolean)
const url = new URL(base)
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
const total = Math.round(rate * seconds)
const latencies = []
let sent = 0, done = 0, non2xx = 0, errors = 0
const start = process.hrtime.bigint()
const elapsedMs = () => Number(process.hrtime.bigint() - start) / 1e6

function send(i) {
  const due = (i * 1000) / rate
  const req = http.request({
    host: url.hostname, port: url.port, path: `/v1/users/${encodeURIComponent(ids[i % ids.length])}/scores`,
    agent, headers: { 'x-api-key': key },
  }, (res) => {
    res.resume()
    res.on('end', () => {
      latencies.push(elapsedMs() - due)
      if (res.statusCode < 200 || res.statusCode >= 300) non2xx++
      finish()
    })
  })
  req.on('error', () => { errors++; finish() })
  req.end()
}

function finish() {
  done++
  if (done < total) return
  latencies.sort((a, b) => a - b)
  const q = (p) => Number(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2))
  console.log(JSON.stringify({
    requests: done, rps: Number((done / (elapsedMs() / 1000)).toFixed(1)), non2xx, errors,
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
