// The ingester alone on a replay at --speed max: source -> Batcher -> wire frames built and discarded
// (no ZeroMQ, no processor), the direct path against the WebSocket path, on the binance-ws recordings of
// shared/data (or the recordings given). Prints the machine, then one line per case: trades/s (median
// of the runs), normalized messages/s, frames, and the wall time.
// usage: node bench/replay-direct.js [--runs 3] [--data-types trade|trade,book_snapshot] [--files exchange:symbol:a.gz,b.gz ...]
import os from 'node:os'
import { parseArgs } from 'node:util'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { openReplay } from '../src/sources/replay.js'
import { Batcher } from '../src/batcher.js'

const { values: a } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'data-types': { type: 'string', default: 'trade' },
    files: { type: 'string', multiple: true }
  }
})
const BWS = resolve(fileURLToPath(new URL('../../../shared/data/binance-ws', import.meta.url)))
const CASES = (a.files ?? [
  `binance:btcusdt:${BWS}/spot_btcusdt_20240808.gz,${BWS}/spot_btcusdt_20240809.gz`,
  `binance-futures:btcusdt:${BWS}/usdm_btcusdt_20240808.gz`,
  `binance-delivery:btcusd_perp:${BWS}/cm_btcusd_perp_20240808.gz`
]).map((spec) => {
  const [exchange, symbol, files] = spec.split(':')
  return { exchange, symbols: [symbol], files: files.split(',') }
})
const dataTypes = a['data-types'].split(',')
const runs = Number(a.runs)

/** One replay through the Batcher into a sink that builds each frame and drops it. */
async function once (c, replayPath) {
  const source = openReplay({ ...c, dataTypes, speed: 'max', replayPath })
  let frames = 0
  let bytes = 0
  const batcher = new Batcher({
    send: async (f) => { bytes += f.build().length; frames++ },
    session: 'bench',
    subscribed: { [c.exchange]: c.symbols.map((s) => s.toUpperCase()) }
  })
  const t0 = performance.now()
  batcher.start({ source: 'replay', exchanges: [c.exchange], data_types: source.dataTypes, speed: 'max', ingester_version: 'bench' })
  let end = null
  for await (const v of source) {
    if (!Array.isArray(v) && v.type === 'end') { end = v; break }
    for (const m of Array.isArray(v) ? v : [v]) { // the direct path yields a batch per piece read
      const p = batcher.push(m)
      if (p !== undefined) await p
    }
  }
  await batcher.end({ reason: end?.reason ?? 'source_closed', counts: {} })
  const s = (performance.now() - t0) / 1000
  const n = source.ledgerCounts().normalized
  if (end?.reason !== 'replay_finished') throw new Error(`${replayPath}: ${end?.error}`)
  return { s, trades: n.trade ?? 0, messages: Object.values(n).reduce((x, y) => x + y, 0), frames, bytes }
}

const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
console.log(`machine: ${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
console.log(`data types: ${dataTypes.join(',')}; ${runs} run(s) each, median; ingester alone (replay -> Batcher -> frames built, discarded)`)
for (const c of CASES) {
  const name = `${c.exchange} ${c.files.map((f) => f.split('/').at(-1)).join('+')}`
  const result = {}
  for (const path of ['websocket', 'direct']) {
    const rs = []
    for (let i = 0; i < runs; i++) rs.push(await once(c, path))
    const s = median(rs.map((r) => r.s))
    const r = rs[0]
    result[path] = r.trades / s
    console.log(`${name.padEnd(62)} ${path.padEnd(9)} ${Math.round(r.trades / s).toLocaleString('en-US').padStart(9)} trades/s  ${Math.round(r.messages / s).toLocaleString('en-US').padStart(9)} msgs/s  ${r.trades} trades ${r.messages} msgs ${r.frames} frames  ${s.toFixed(3)} s`)
  }
  console.log(`${name.padEnd(62)} direct / websocket: ${(result.direct / result.websocket).toFixed(2)}x`)
}
