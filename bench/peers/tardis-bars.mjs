// tardis-dev, driven directly: raw Binance frames from a `<ns> <json>` gzip recording -> tardis-dev's own
// `normalizeMessages` loop (what its `replayNormalized` runs) with the `normalizeTrades` mapper, each
// message's localTimestamp the recorded `<ns>` -> `compute(..., computeTradeBars({kind: 'time', interval}))`
// for each timeframe, as tardis-dev's README shows. No WebSocket, no network.
//
// usage: node bench/peers/tardis-bars.mjs RECORDING.gz BARS_OUT.json
// prints one JSON line: {"trades", "seconds" (from opening the file to the last bar, module loading
// excluded), "bars"}; writes the bars to BARS_OUT.json as [timeframe, bucket start ms, open, high, low,
// close, volume, trades] rows.
import { createReadStream, writeFileSync } from 'node:fs'
import { createGunzip } from 'node:zlib'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

// tardis-dev from the ingester's node_modules (the version the project pins)
const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '..', '..', 'ingest-node', 'package.json'))
const { normalizeTrades, compute, computeTradeBars } = require('tardis-dev')
const { normalizeMessages } = require('tardis-dev/dist/handy')

const TIMEFRAMES = { '15s': 15e3, '1m': 60e3, '5m': 300e3, '15m': 900e3, '4h': 14_400e3, '24h': 86_400e3 }

const [file, barsOut] = process.argv.slice(2)
if (!file || !barsOut) {
  console.error('usage: node tardis-bars.mjs RECORDING.gz BARS_OUT.json')
  process.exit(2)
}

// the recording's lines as tardis-dev's replay yields them: {localTimestamp: Date with μs, message}
function parse(gz, lineNo, line) {
  const space = line.indexOf(' ')
  if (space < 0) throw new Error(`${gz}:${lineNo}: not "<ns> <json>"`)
  // <ns>: ms = all but the last 6 digits, μs = the 3 before the last 3 (no BigInt on the hot path)
  const localTimestamp = new Date(Number(line.slice(0, space - 6)))
  localTimestamp.μs = Number(line.slice(space - 6, space - 3))
  return { localTimestamp, message: JSON.parse(line.slice(space + 1)) }
}

async function* messages(gz) {
  let rest = ''
  let lineNo = 0
  for await (const chunk of createReadStream(gz).pipe(createGunzip()).setEncoding('utf8')) {
    const text = rest + chunk
    let from = 0
    let nl
    while ((nl = text.indexOf('\n', from)) >= 0) {
      lineNo += 1
      if (nl > from) yield parse(gz, lineNo, text.slice(from, nl))
      from = nl + 1
    }
    rest = text.slice(from)
  }
  if (rest.length > 0) yield parse(gz, lineNo + 1, rest)
}

const start = performance.now()
const createMappers = (localTimestamp) => [normalizeTrades('binance', localTimestamp)]
const source = messages(file)
const first = await source.next()
const replayed = (async function* () {
  if (!first.done) yield first.value
  yield* source
})()
const normalized = normalizeMessages(
  'binance',
  undefined,
  replayed,
  createMappers(first.done ? new Date() : first.value.localTimestamp),
  createMappers,
  false,
  undefined
)
const computed = compute(
  normalized,
  ...Object.values(TIMEFRAMES).map((interval) => computeTradeBars({ kind: 'time', interval }))
)
const names = Object.fromEntries(Object.entries(TIMEFRAMES).map(([tf, ms]) => [`trade_bar_${ms}ms`, tf]))
let trades = 0
const bars = []
for await (const m of computed) {
  if (m.type === 'trade') trades += 1
  else if (m.type === 'trade_bar') {
    const interval = TIMEFRAMES[names[m.name]]
    bars.push([names[m.name], m.timestamp.valueOf() - interval, m.open, m.high, m.low, m.close, m.volume, m.trades])
  }
}
const seconds = (performance.now() - start) / 1000
writeFileSync(barsOut, JSON.stringify(bars))
console.log(JSON.stringify({ trades, seconds, bars: bars.length }))
