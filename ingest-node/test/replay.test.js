// Replay end to end inside Node: recorded Binance frames -> local ws server -> the real tardis-dev
// streamNormalized (via WSS_URL_BINANCE) -> normalized messages, checked against the raw lines.
import { test, describe, before } from 'node:test'
import assert from 'node:assert/strict'
import { openReplay } from '../src/sources/replay.js'
import { memoryLog } from '../src/log.js'
import { SPOT_0808, tmpDir, headLines, writeGz, expectedTrades, collect, assertTrade } from './helpers.js'

const SLICE_LINES = 4000 // includes the unwrapped REST depth snapshot (line 8), depth, bookTicker and trade frames

let slicePath
let expected
before(async () => {
  const lines = await headLines(SPOT_0808, SLICE_LINES)
  assert.equal(lines.length, SLICE_LINES, `${SPOT_0808} has fewer than ${SLICE_LINES} lines`)
  slicePath = writeGz(tmpDir(), 'spot_btcusdt_slice.gz', lines)
  expected = expectedTrades(lines)
  assert.ok(expected.length > 500, 'the slice has trades')
})

describe('replay through tardis-dev streamNormalized', () => {
  test('every @trade line comes out normalized, then exactly one end', { timeout: 30000 }, async () => {
    const log = memoryLog()
    const source = openReplay({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'], files: [slicePath], speed: 'max', replayPath: 'websocket', log })
    const msgs = await collect(source)
    const ends = msgs.filter((m) => m.type === 'end')
    assert.equal(ends.length, 1, 'exactly one end')
    assert.deepEqual(msgs.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    assert.equal(msgs.filter((m) => m.type === 'disconnect').length, 0, 'the final close is the end, not a disconnect')
    const trades = msgs.filter((m) => m.type === 'trade')
    assert.equal(trades.length, expected.length)
    trades.forEach((m, i) => assertTrade(m, expected[i], 'binance', `trade #${i} (id ${expected[i].id})`))
    assert.equal(source.stats.server.sent, expected.length)
    assert.equal(source.stats.server.skipped, SLICE_LINES - expected.length, 'everything not subscribed is counted as skipped')
    assert.deepEqual(source.ledgerCounts(), {
      raw: { read: SLICE_LINES, sent: expected.length, received: expected.length, skipped: SLICE_LINES - expected.length },
      normalized: { trade: expected.length },
      internal: {}
    })
    assert.equal(source.stats.recording.bad, 0)
    assert.equal(process.env.WSS_URL_BINANCE.startsWith('ws://127.0.0.1:'), true)
  })

  test('cutAfter: one disconnect in the middle, and still every later trade', { timeout: 30000 }, async () => {
    const cutAfter = 200
    const source = openReplay({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'], files: [slicePath], speed: 'max', cutAfter, log: memoryLog() })
    const msgs = await collect(source)
    const kinds = msgs.map((m) => m.type)
    assert.equal(kinds.filter((t) => t === 'disconnect').length, 1, 'one disconnect')
    assert.equal(kinds.filter((t) => t === 'end').length, 1, 'one end')
    assert.equal(kinds.at(-1), 'end')
    assert.equal(msgs.at(-1).reason, 'replay_finished')
    const at = kinds.indexOf('disconnect')
    assert.equal(at, cutAfter, `the disconnect comes right after the first ${cutAfter} trades`)
    const d = msgs[at]
    assert.equal(d.exchange, 'binance')
    assert.deepEqual(d.symbols, ['btcusdt'])
    const trades = msgs.filter((m) => m.type === 'trade')
    assert.equal(trades.length, expected.length, 'nothing lost around the drop')
    trades.forEach((m, i) => assertTrade(m, expected[i], 'binance', `trade #${i} (id ${expected[i].id})`))
    assert.equal(source.stats.server.cuts, 1)
    assert.equal(source.stats.server.connections, 2)
    assert.equal(source.stats.tardis.reconnects, 1)
    const c = source.ledgerCounts()
    assert.equal(c.raw.sent, expected.length)
    assert.equal(c.raw.received, expected.length, 'a clean close loses nothing')
    assert.deepEqual(c.normalized, { trade: expected.length, disconnect: 1 })
  })

  test('malformed recording lines are counted and the good lines around them still come out', { timeout: 30000 }, async () => {
    const lines = (await headLines(slicePath, 300))
    const broken = [...lines.slice(0, 100), 'this line is broken', ...lines.slice(100)]
    const file = writeGz(tmpDir(), 'broken.gz', broken)
    const log = memoryLog()
    const source = openReplay({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'], files: [file], speed: 'max', log })
    const msgs = await collect(source)
    assert.equal(msgs.filter((m) => m.type === 'trade').length, expectedTrades(lines).length)
    assert.equal(source.stats.recording.bad, 1)
    assert.ok(log.lines.some((l) => /broken\.gz:101: malformed line/.test(l)), log.lines.join('\n'))
  })

  test('speed 1000: paced replay delivers the same trades', { timeout: 30000 }, async () => {
    const lines = await headLines(slicePath, 400) // ~4 s of recording -> a few ms at 1000x
    const file = writeGz(tmpDir(), 'paced.gz', lines)
    const msgs = await collect(openReplay({ exchange: 'binance', symbols: ['btcusdt'], files: [file], speed: 1000 }))
    const trades = msgs.filter((m) => m.type === 'trade')
    const exp = expectedTrades(lines)
    assert.equal(trades.length, exp.length)
    trades.forEach((m, i) => assertTrade(m, exp[i], 'binance', `trade #${i} (id ${exp[i].id})`))
    assert.equal(msgs.at(-1).reason, 'replay_finished')
  })

  test('book_snapshot: the recorded REST depth snapshot seeds tardis-dev\'s book; REST calls stay local', { timeout: 30000 }, async () => {
    const source = openReplay({
      exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade', 'book_snapshot'], bookDepth: 5, bookIntervalMs: 0,
      files: [slicePath], speed: 'max', log: memoryLog()
    })
    const msgs = await collect(source)
    assert.equal(msgs.at(-1).reason, 'replay_finished')
    assert.equal(msgs.filter((m) => m.type === 'disconnect').length, 0)
    assert.equal(msgs.filter((m) => m.type === 'trade').length, expected.length)
    const books = msgs.filter((m) => m.type === 'book_snapshot')
    assert.ok(books.length > 100, `book snapshots come out (${books.length})`)
    for (const b of books) {
      assert.equal(b.depth, 5)
      assert.equal(b.symbol, 'BTCUSDT')
      assert.ok(b.bids[0].price < b.asks[0].price, 'best bid below best ask')
      for (let i = 1; i < 5; i++) {
        assert.ok(b.bids[i].price < b.bids[i - 1].price && b.asks[i].price > b.asks[i - 1].price, 'levels sorted')
      }
    }
    assert.ok(source.stats.tardis.internal.book_change > 0, 'book_change inputs are counted, not sent')
  })

  test('a missing recording ends the stream with reason error, naming it', async () => {
    const msgs = await collect(openReplay({ exchange: 'binance', symbols: ['btcusdt'], files: ['/nope/missing.gz'] }))
    assert.deepEqual(msgs, [{ type: 'end', reason: 'error', error: 'replay: recording: cannot read /nope/missing.gz: ENOENT' }])
  })
})
