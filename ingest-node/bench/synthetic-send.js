// Benchmark: synthetic trades -> frames -> ZeroMQ PUSH -> a counting PULL in a second Node process.
// usage: node bench/synthetic-send.js [total=3000000] [maxBatch=1000] [symbols=100] [--decode]
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { openSynthetic } from '../src/sources/synthetic.js'
import { Batcher } from '../src/batcher.js'
import { Sender } from '../src/sender.js'
import { runPipeline } from '../src/pipeline.js'

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const total = Number(args[0] ?? 3_000_000)
const maxBatch = Number(args[1] ?? 1000)
const symbolsCount = Number(args[2] ?? 100)
const endpoint = `tcp://127.0.0.1:${20000 + Math.floor(Math.random() * 20000)}`

const sink = spawn(process.execPath, [fileURLToPath(new URL('./sink.js', import.meta.url)), endpoint, ...process.argv.filter((a) => a === '--decode')], { stdio: ['ignore', 'pipe', 'inherit'] })
const lines = createInterface({ input: sink.stdout })[Symbol.asyncIterator]()
await lines.next() // ready

const source = openSynthetic({ symbolsCount, rate: 'max', total })
const sender = new Sender({ endpoint, sndhwm: 4 })
const batcher = new Batcher({ send: (f) => sender.send(f), maxBatch, subscribed: { synthetic: source.symbols } })
const t0 = performance.now()
const result = await runPipeline({ source, batcher, sender, startInfo: { source: 'synthetic', exchanges: ['synthetic'], data_types: ['trade'], speed: 'max' } })
const sendSeconds = (performance.now() - t0) / 1000
const sinkResult = JSON.parse((await lines.next()).value)
const out = {
  total,
  maxBatch,
  symbolsCount,
  reason: result.reason,
  sendSeconds: +sendSeconds.toFixed(3),
  tradesPerSecond: Math.round(total / sendSeconds),
  frames: sender.stats.frames,
  mbytes: +(sender.stats.bytes / 1e6).toFixed(1),
  blockedSends: sender.stats.blockedSends,
  blockedMs: Math.round(sender.stats.blockedMs),
  sink: { trades: sinkResult.rows.trade, frames: sinkResult.frames, gaps: sinkResult.gaps, seconds: +sinkResult.seconds.toFixed(3) }
}
console.log(JSON.stringify(out))
if (sinkResult.rows.trade !== total) {
  console.error(`sink received ${sinkResult.rows.trade} trades, expected ${total}`)
  process.exitCode = 1
}
