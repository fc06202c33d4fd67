// Coinbase end to end on a capture of the real exchange (shared/data/cryptofeed-ws/COINBASE.ws.28.0,
// cryptofeed format, recorded on the `level2`, `ticker` and `matches` channels): replay server ->
// tardis-dev's own CoinbaseRealTimeFeed (WSS_URL_COINBASE; it subscribes `level2_batch` and `matches`)
// -> streamNormalized / computeBookSnapshots -> batcher + wire encoder. Expected values are derived by
// the test from the raw recorded JSON.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { openReplay } from '../src/sources/replay.js'
import { toUs } from '../src/convert.js'
import { memoryLog } from '../src/log.js'
import { COINBASE_WS, cryptofeedReceived, collect, topLevels, levelsOf, distinctTops, throughWire, rowsOfType } from './helpers.js'

const PRODUCTS = ['SKL-USD', 'SKL-BTC', 'BAND-GBP', 'NMR-EUR', 'BAND-BTC', 'YFI-BTC', 'DASH-BTC', 'NU-GBP', 'CRV-EUR', 'SKL-GBP']
const BOOK_PRODUCTS = ['SKL-USD', 'DASH-BTC', 'NU-GBP']
const DEPTH = 5
const RAW = cryptofeedReceived(COINBASE_WS)

/** ISO 8601 with up to 6 fractional digits -> µs since epoch (Coinbase times carry µs). @param {string} s */
function isoUs (s) {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(s)
  return Date.parse(`${m[1]}Z`) * 1000 + Number(((m[2] ?? '') + '000000').slice(0, 6))
}

/**
 * Each product's top levels (and the time of the change) after each of its level2 frames: `snapshot`
 * replaces the book, `l2update` changes ([side, price, new size]; size 0 removes the level).
 * @returns {Map<string, {bids: any[][], asks: any[][], timestampUs: number|null}[]>}
 */
function bookStates () {
  const books = new Map()
  const states = new Map(BOOK_PRODUCTS.map((p) => [p, []]))
  for (const m of RAW) {
    if (!states.has(m.product_id)) continue
    if (m.type === 'snapshot') {
      books.set(m.product_id, {
        bids: new Map(m.bids.map(([p, s]) => [Number(p), Number(s)])),
        asks: new Map(m.asks.map(([p, s]) => [Number(p), Number(s)]))
      })
    } else if (m.type === 'l2update') {
      const book = books.get(m.product_id)
      for (const [side, p, s] of m.changes) {
        const levels = side === 'buy' ? book.bids : book.asks
        if (Number(s) === 0) levels.delete(Number(p))
        else levels.set(Number(p), Number(s))
      }
    } else continue
    const book = books.get(m.product_id)
    states.get(m.product_id).push({
      bids: topLevels(book.bids, 'bids', DEPTH),
      asks: topLevels(book.asks, 'asks', DEPTH),
      timestampUs: m.time === undefined ? null : isoUs(m.time)
    })
  }
  return states
}

describe('replay coinbase (cryptofeed capture)', () => {
  test('trades from `match`: the taker side is the opposite of Coinbase\'s (maker) side, row by row', { timeout: 30000 }, async () => {
    const source = openReplay({ exchange: 'coinbase', symbols: PRODUCTS, dataTypes: ['trade'], files: [COINBASE_WS], speed: 'max', replayPath: 'websocket', log: memoryLog() })
    const msgs = await collect(source)
    assert.deepEqual(msgs.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    // `match` only: `last_match` (sent once per product at subscribe) is an earlier trade, not a new one
    const matches = RAW.filter((m) => m.type === 'match')
    assert.equal(matches.length, 97)
    const trades = msgs.filter((m) => m.type === 'trade')
    assert.equal(trades.length, matches.length)
    trades.forEach((t, i) => {
      const r = matches[i]
      const where = `trade #${i} (trade_id ${r.trade_id}, maker side ${r.side})`
      assert.equal(t.exchange, 'coinbase', where)
      assert.equal(t.symbol, r.product_id, where)
      assert.equal(t.id, String(r.trade_id), where)
      assert.equal(t.price, Number(r.price), where)
      assert.equal(t.amount, Number(r.size), where)
      assert.notEqual(t.side, r.side, where)
      assert.equal(t.side, r.side === 'sell' ? 'buy' : 'sell', where)
      assert.equal(toUs(t.timestamp), isoUs(r.time), where)
    })
    assert.ok(trades.some((t) => t.side === 'buy') && trades.some((t) => t.side === 'sell'), 'both sides occur')
    // the wire carries the taker side too
    const frames = await throughWire(msgs, { exchange: 'coinbase', symbols: PRODUCTS, dataTypes: ['trade'] })
    assert.deepEqual(rowsOfType(frames, 'trade').map((r) => [r.symbol[1], r.id, r.side]), matches.map((r) => [r.product_id, String(r.trade_id), r.side === 'sell' ? 'buy' : 'sell']))
    assert.equal(source.stats.server.clientProblems, 0, 'tardis-dev\'s subscribe (level2_batch / matches) was understood')
  })

  test('level2 snapshot + l2update -> book snapshots equal to the book the test rebuilds', { timeout: 30000 }, async () => {
    const source = openReplay({
      exchange: 'coinbase', symbols: BOOK_PRODUCTS, dataTypes: ['book_snapshot'], bookDepth: DEPTH, bookIntervalMs: 0,
      files: [COINBASE_WS], speed: 'max', replayPath: 'websocket', log: memoryLog()
    })
    const msgs = await collect(source)
    assert.equal(msgs.at(-1).reason, 'replay_finished')
    const states = bookStates()
    for (const product of BOOK_PRODUCTS) {
      const got = msgs.filter((m) => m.type === 'book_snapshot' && m.symbol === product)
      const want = distinctTops(states.get(product), DEPTH)
      assert.ok(want.length > 5, `${product} changes its top ${DEPTH} levels`)
      assert.equal(got.length, want.length, `${product}: book snapshots`)
      got.forEach((b, i) => {
        const where = `${product} snapshot #${i}`
        assert.deepEqual(levelsOf(b.bids), want[i].bids, `${where} bids`)
        assert.deepEqual(levelsOf(b.asks), want[i].asks, `${where} asks`)
        // the snapshot has no time (tardis-dev stamps it on arrival); an l2update carries the exchange's
        if (want[i].timestampUs !== null) assert.equal(toUs(b.timestamp), want[i].timestampUs, `${where} timestamp`)
      })
    }
    // only the subscribed products' level2 frames went out
    assert.equal(source.stats.server.sent, RAW.filter((m) => (m.type === 'snapshot' || m.type === 'l2update') && BOOK_PRODUCTS.includes(m.product_id)).length)
  })
})
