// Benchmark: the journal's own cost in the ingester, without ZeroMQ or a processor: synthetic trades ->
// batcher -> frames built (as the sender builds them), without and with a journal, runs alternating.
// usage: node bench/journal-cost.js [total=3000000] [rounds=5] [dir=a temporary directory]
// prints one JSON line: {"without": [trades/s, ...], "with": [...]}
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSynthetic } from '../src/sources/synthetic.js'
import { Batcher } from '../src/batcher.js'
import { Journal } from '../src/journal.js'
import { runPipeline } from '../src/pipeline.js'

const total = Number(process.argv[2] ?? 3_000_000)
const rounds = Number(process.argv[3] ?? 5)
const base = process.argv[4] ?? tmpdir()
const START = { source: 'synthetic', exchanges: ['synthetic'], data_types: ['trade'], speed: 'max' }

/** @param {boolean} journaled */
async function run (journaled) {
  const dir = mkdtempSync(join(base, 'journal-cost-'))
  try {
    const journal = journaled ? new Journal({ dir }).open() : null
    const source = openSynthetic({ symbolsCount: 100, rate: 'max', total })
    const sender = { send: async (f) => { f.build() }, close: async () => true }
    const batcher = new Batcher({ send: (f) => sender.send(f), subscribed: { synthetic: source.symbols }, journal })
    const t0 = performance.now()
    await runPipeline({ source, batcher, sender: /** @type {any} */ (sender), startInfo: START })
    const seconds = (performance.now() - t0) / 1000
    journal?.close()
    return total / seconds
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

await run(false) // warm-up (JIT), not counted
await run(true)
const out = { without: [], with: [] }
for (let r = 0; r < rounds; r++) {
  for (const journaled of r % 2 === 0 ? [false, true] : [true, false]) out[journaled ? 'with' : 'without'].push(await run(journaled))
}
console.log(JSON.stringify(out))
