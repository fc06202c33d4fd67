// ZeroMQ round trip inside one process: Sender (PUSH, connects) -> Pull (binds), frames decoded.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pull } from 'zeromq'
import { Sender } from '../src/sender.js'
import { Batcher } from '../src/batcher.js'
import { runPipeline } from '../src/pipeline.js'
import { openSynthetic } from '../src/sources/synthetic.js'
import { decodeFrame, frameToRows, encodeFrame } from '../src/wire/index.js'

const START = { source: 'synthetic', exchanges: ['synthetic'], data_types: ['trade'], speed: 'max' }

describe('zeromq', () => {
  test('pipeline: synthetic trades -> PUSH -> PULL, frames decode, seq has no gap, end is last', { timeout: 20000 }, async () => {
    const pull = new Pull()
    await pull.bind('tcp://127.0.0.1:*')
    const endpoint = pull.lastEndpoint
    const source = openSynthetic({ symbolsCount: 7, rate: 'max', total: 4321, startUs: 1_700_000_000_000_000, eventStepUs: 1000 })
    const sender = new Sender({ endpoint, sndhwm: 4 })
    const batcher = new Batcher({ send: (f) => sender.send(f), maxBatch: 1000, subscribed: { synthetic: source.symbols } })
    const received = (async () => {
      const frames = []
      for await (const [msg] of pull) {
        const f = decodeFrame(msg)
        f.bytes = msg.length
        frames.push(f)
        if (f.header.type === 'end') break
      }
      pull.close() // as the processor does: hanging up acknowledges the end frame
      return frames
    })()
    const result = await runPipeline({ source, batcher, sender, startInfo: START })
    const frames = await received
    assert.equal(result.reason, 'replay_finished')
    assert.equal(result.endDelivered, true)
    assert.deepEqual(frames.map((f) => f.header.seq), frames.map((_, i) => i))
    assert.equal(frames[0].header.type, 'start')
    assert.equal(frames[0].header.symbols.length, 7)
    const end = frames.at(-1).header
    assert.equal(end.type, 'end')
    assert.equal(end.reason, 'replay_finished')
    const before = frames.slice(0, -1)
    assert.deepEqual(end.counts, {
      rows: { trade: 4321 },
      frames: before.length,
      frames_by_type: { start: 1, trade: 5 },
      bytes: before.reduce((a, f) => a + f.bytes, 0),
      normalized: { trade: 4321 },
      dropped: {},
      raw: {},
      internal: {}
    })
    assert.deepEqual(result.counts, end.counts, 'the pipeline returns what the end frame carried')
    const trades = frames.filter((f) => f.header.type === 'trade')
    assert.deepEqual(trades.map((f) => f.header.n), [1000, 1000, 1000, 1000, 321])
    const rows = trades.flatMap((f) => frameToRows(f).map((r) => ({ ...r, symbol: f.header.symbols[r.sym][1] })))
    assert.deepEqual(rows.map((r) => r.id), rows.map((_, i) => String(i)))
    assert.deepEqual(rows.map((r) => r.timestamp), rows.map((_, i) => 1_700_000_000_000_000 + i * 1000))
    assert.ok(rows.every((r) => /^SYN00[0-6]$/.test(r.symbol) && r.price > 0 && (r.side === 'buy' || r.side === 'sell')))
    assert.equal(sender.stats.frames, frames.length)
    assert.equal(sender.stats.rows.trade, 4321)
  })

  test('back-pressure: with small high-water marks a reader that stops blocks the sender', { timeout: 20000 }, async () => {
    const pull = new Pull({ receiveHighWaterMark: 1 })
    await pull.bind('inproc://backpressure-test')
    const sender = new Sender({ endpoint: 'inproc://backpressure-test', sndhwm: 1 })
    const frame = encodeFrame({ type: 'disconnect', seq: 0, session: 's', symbols: [], recv_mono_us: 0, sent_mono_us: 0 }, { sym: [], local_timestamp: [] })
    const total = 20
    let sent = 0
    const sends = Array.from({ length: total }, () => sender.send(frame).then(() => { sent++ }))
    await sleep(200)
    assert.ok(sent < total, `the sender must block while nobody reads (sent ${sent} of ${total})`)
    let got = 0
    while (got < total) {
      await pull.receive()
      got++
    }
    await Promise.all(sends)
    assert.equal(sent, total)
    assert.ok(sender.stats.blockedSends >= 1, 'blocked sends are counted')
    assert.ok(sender.stats.blockedMs > 0, 'time blocked is measured')
    await sender.close()
    pull.close()
  })
})
