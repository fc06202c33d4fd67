// The ingester's half of the ledger (proto/README.md "Ledger counts"): every message the source yields
// is a row, a disconnect frame or a counted drop, and each ledger/end frame's counts match the frames
// before it.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep, setImmediate as nextTurn } from 'node:timers/promises'
import { Batcher } from '../src/batcher.js'
import { runPipeline, ledgerCounts } from '../src/pipeline.js'
import { decodeFrame } from '../src/wire/index.js'

const START = { source: 'test', exchanges: ['binance'], data_types: ['trade'], speed: 'max' }
const CONTROL = new Set(['start', 'ledger', 'end'])

let nextId = 0
const trade = (symbol = 'BTCUSDT') => ({
  type: 'trade', exchange: 'binance', symbol, id: String(nextId++), price: 100.5, amount: 0.25, side: 'buy', timestampUs: 1, localTimestampUs: 2
})
const disconnect = () => ({ type: 'disconnect', exchange: 'binance', localTimestampUs: 3 })
const unknown = () => ({ type: 'book_ticker', exchange: 'binance', symbol: 'BTCUSDT' })

/** Dropped messages of one message type (keys are `<reason>:<type>`). @param {Record<string, number>} dropped @param {string} type */
const droppedOf = (dropped, type) => Object.entries(dropped).filter(([k]) => k.slice(k.indexOf(':') + 1) === type).reduce((a, [, n]) => a + n, 0)

/**
 * A ledger or end frame's counts against the frames before it, and the invariants of proto/README.md.
 * @param {{header: any}} frame @param {{header: any, bytes: number}[]} before every earlier frame, in seq order
 */
function assertLedger (frame, before) {
  const c = frame.header.counts
  const where = `${frame.header.type} seq ${frame.header.seq}`
  assert.deepEqual(before.map((f) => f.header.seq), before.map((_, i) => i), `${where}: frames before it`)
  assert.equal(c.frames, frame.header.seq, `${where}: frames = seq`)
  const framesByType = {}
  const rows = {}
  for (const f of before) {
    framesByType[f.header.type] = (framesByType[f.header.type] ?? 0) + 1
    if (!CONTROL.has(f.header.type)) rows[f.header.type] = (rows[f.header.type] ?? 0) + f.header.n
  }
  assert.deepEqual(c.frames_by_type, framesByType, `${where}: frames_by_type`)
  assert.deepEqual(c.rows, rows, `${where}: rows are those of the frames before it`)
  assert.equal(c.bytes, before.reduce((a, f) => a + f.bytes, 0), `${where}: bytes`)
  for (const [type, n] of Object.entries(c.normalized)) {
    const became = type === 'disconnect' ? (c.frames_by_type.disconnect ?? 0) : (c.rows[type] ?? 0)
    assert.equal(n, became + droppedOf(c.dropped, type), `${where}: normalized.${type} = rows (disconnect: frames) + dropped`)
  }
  for (const type of Object.keys(c.rows)) assert.ok(type in c.normalized, `${where}: rows.${type} without normalized.${type}`)
  for (const key of Object.keys(c.dropped)) assert.ok(c.normalized[key.slice(key.indexOf(':') + 1)] > 0, `${where}: dropped ${key} not in normalized`)
}

/**
 * A sender that encodes in order, decodes, and keeps each frame with its byte length. `gate` (a
 * promise) holds every send until it resolves; `fail(seq)` says which sends reject.
 */
function fakeSender ({ gate = Promise.resolve(), fail = (/** @type {number} */ _seq) => false } = {}) {
  /** @type {{header: any, bytes: number}[]} */
  const frames = []
  let tail = Promise.resolve()
  const sender = {
    frames,
    stats: { frames: 0, bytes: 0 },
    send (/** @type {any} */ f) {
      const p = tail.then(async () => {
        await gate
        if (fail(f.seq)) throw new Error(`send of frame ${f.seq} failed`)
        const buf = f.build()
        frames.push({ ...decodeFrame(buf), bytes: buf.length })
      })
      tail = p.catch(() => {})
      return p
    },
    close: async () => { await tail; return true }
  }
  return sender
}

/** An async source over `values` (messages or arrays of them), pausing `pauseMs` between them. */
function scriptedSource (values, { pauseMs = 0, end = true, ledger } = {}) {
  return {
    ledgerCounts: ledger,
    async * [Symbol.asyncIterator] () {
      for (const v of values) {
        if (pauseMs > 0) await sleep(pauseMs)
        yield v
      }
      if (end) yield { type: 'end', reason: 'replay_finished', error: null }
    }
  }
}

describe('ledger: batcher', () => {
  test('each message is a row, a disconnect frame or a drop; a ledger frame flushes pending rows first', async () => {
    const sender = fakeSender()
    const batcher = new Batcher({ send: (f) => sender.send(f), session: 'ab12', subscribed: { binance: ['BTCUSDT', 'ETHUSDT'] } })
    batcher.start({ ...START, ingester_version: 'test' })
    batcher.push(trade())
    batcher.push(trade('ETHUSDT'))
    batcher.push(unknown())
    batcher.push(disconnect()) // flushes the 2 trades; 2 rows, one per subscribed symbol
    batcher.push(trade())
    batcher.ledger() // flushes the pending trade first
    batcher.push(trade())
    batcher.drop(trade(), 'stopped')
    batcher.end({ reason: 'replay_finished' })
    await sender.close()
    const { frames } = sender
    assert.deepEqual(frames.map((f) => [f.header.type, f.header.n, f.header.seq]), [
      ['start', 0, 0], ['trade', 2, 1], ['disconnect', 2, 2], ['trade', 1, 3], ['ledger', 0, 4], ['trade', 1, 5], ['end', 0, 6]
    ])
    const ledger = frames[4].header.counts
    assert.deepEqual(ledger, {
      rows: { trade: 3, disconnect: 2 },
      frames: 4,
      frames_by_type: { start: 1, trade: 2, disconnect: 1 },
      bytes: frames.slice(0, 4).reduce((a, f) => a + f.bytes, 0),
      normalized: { trade: 3, disconnect: 1, book_ticker: 1 },
      dropped: { 'unknown_type:book_ticker': 1 }
    })
    assertLedger(frames[4], frames.slice(0, 4))
    const end = frames[6].header.counts
    assert.deepEqual(end.normalized, { trade: 5, disconnect: 1, book_ticker: 1 })
    assert.deepEqual(end.dropped, { 'unknown_type:book_ticker': 1, 'stopped:trade': 1 })
    assertLedger(frames[6], frames.slice(0, 6))
    assert.ok(frames.every((f) => f.header.session === 'ab12'))
  })

  test('ledger() outside the session throws', () => {
    const batcher = new Batcher({ send: async () => {} })
    assert.throws(() => batcher.ledger(), /outside the session/)
  })
})

describe('ledger: pipeline', () => {
  test('periodic ledger frames: each one matches the frames before it; raw and internal from the source', { timeout: 10000 }, async () => {
    const values = []
    for (let i = 0; i < 30; i++) {
      values.push(i % 3 === 0 ? [trade(), trade('ETHUSDT'), unknown()] : trade())
      if (i % 10 === 5) values.push(disconnect())
    }
    let yielded = 0
    const source = scriptedSource(values, {
      pauseMs: 3,
      ledger: () => ({ raw: { received: yielded * 2 }, normalized: undefined, internal: { subscription: 1 } })
    })
    const counted = { [Symbol.asyncIterator]: async function * () { for await (const v of source) { if (v.type !== 'end') yielded += Array.isArray(v) ? v.length : 1; yield v } }, ledgerCounts: source.ledgerCounts }
    const sender = fakeSender()
    const batcher = new Batcher({ send: (f) => sender.send(f), maxBatch: 4, subscribed: { binance: ['BTCUSDT'] } })
    const result = await runPipeline({ source: counted, batcher, sender, startInfo: START, ledgerIntervalMs: 15 })
    const { frames } = sender
    const ledgers = frames.filter((f) => f.header.type === 'ledger')
    assert.ok(ledgers.length >= 2, `expected several ledger frames, got ${ledgers.length}`)
    for (const f of [...ledgers, frames.at(-1)]) {
      assertLedger(f, frames.slice(0, f.header.seq))
      assert.deepEqual(f.header.counts.internal, { subscription: 1 })
      assert.equal(typeof f.header.counts.raw.received, 'number')
      assert.equal(f.header.counts.source_normalized, undefined)
    }
    const end = frames.at(-1)
    assert.equal(end.header.type, 'end')
    assert.deepEqual(end.header.counts.normalized, { trade: 40, book_ticker: 10, disconnect: 3 })
    assert.deepEqual(end.header.counts.raw, { received: 2 * 53 })
    assert.deepEqual(result.counts, end.header.counts)
    const counts = ledgers.map((f) => f.header.counts.normalized.trade ?? 0)
    assert.deepEqual(counts, counts.slice().sort((a, b) => a - b), 'counts only grow')
  })

  test('the source\'s own normalized count: dropped when it agrees, kept as source_normalized when not', () => {
    const batcher = new Batcher({ send: async () => {} })
    batcher.start({ ...START, ingester_version: 'test' })
    batcher.push(trade())
    batcher.push(trade())
    const agree = ledgerCounts(batcher, { ledgerCounts: () => ({ raw: { received: 5, skipped: 1 }, normalized: { trade: 2, disconnect: 0 }, internal: {} }) })
    assert.deepEqual(agree.raw, { received: 5, skipped: 1 })
    assert.equal(agree.source_normalized, undefined)
    const differ = ledgerCounts(batcher, { ledgerCounts: () => ({ raw: { received: 5 }, normalized: { trade: 3 } }) })
    assert.deepEqual(differ.source_normalized, { trade: 3 })
    assert.deepEqual(differ.normalized, { trade: 2 })
    assert.deepEqual(differ.internal, {})
    const lines = []
    const broken = ledgerCounts(batcher, { ledgerCounts: () => { throw new Error('boom') } }, (l) => lines.push(l))
    assert.deepEqual([broken.raw, broken.internal], [{}, {}])
    assert.match(lines[0], /ledgerCounts\(\) failed: boom/)
  })

  test('stopped while a yielded batch waits on back-pressure: the rest is counted as dropped (stopped)', { timeout: 10000 }, async () => {
    let release
    const gate = new Promise((resolve) => { release = resolve })
    const sender = fakeSender({ gate })
    const batcher = new Batcher({ send: (f) => sender.send(f), maxBatch: 2 })
    const controller = new AbortController()
    const source = scriptedSource([Array.from({ length: 10 }, () => trade())], { end: false })
    const run = runPipeline({ source, batcher, sender, startInfo: START, signal: controller.signal })
    await nextTurn()
    controller.abort()
    await nextTurn()
    release()
    const result = await run
    assert.equal(result.reason, 'source_closed')
    const c = result.counts
    assert.equal(c.normalized.trade, 10)
    assert.equal(c.rows.trade + c.dropped['stopped:trade'], 10)
    assert.ok(c.dropped['stopped:trade'] > 0)
    assertLedger(sender.frames.at(-1), sender.frames.slice(0, -1))
  })

  test('a failed send: the messages not batched yet are counted as dropped (error)', { timeout: 10000 }, async () => {
    const sender = fakeSender({ fail: (seq) => seq === 1 })
    const batcher = new Batcher({ send: (f) => sender.send(f), maxBatch: 2 })
    const source = scriptedSource([Array.from({ length: 5 }, () => trade())])
    const result = await runPipeline({ source, batcher, sender, startInfo: START })
    assert.equal(result.reason, 'error')
    assert.match(result.error, /send of frame 1 failed/)
    assert.deepEqual(result.counts.normalized, { trade: 5 })
    assert.deepEqual(result.counts.rows, { trade: 2 }, 'the failed frame\'s rows were batched: the processor sees its seq missing')
    assert.deepEqual(result.counts.dropped, { 'error:trade': 3 })
  })
})
