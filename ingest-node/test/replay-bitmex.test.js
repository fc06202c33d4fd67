// BitMEX end to end on a capture of the real exchange (shared/data/cryptofeed-ws/BITMEX.ws.1.0, cryptofeed
// format): replay server -> tardis-dev's own BitmexRealTimeFeed (WSS_URL_BITMEX) -> streamNormalized /
// computeBookSnapshots -> batcher + wire encoder. Every expected value is derived by the test from the
// raw recorded JSON; derivative_ticker and liquidation, which the capture does not hold, from a small
// recording written here in BitMEX's documented message format.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { openReplay } from '../src/sources/replay.js'
import { toUs } from '../src/convert.js'
import { memoryLog } from '../src/log.js'
import {
  BITMEX_WS, cryptofeedReceived, collect, topLevels, levelsOf, distinctTops, throughWire, rowsOfType, tmpDir, writeCryptofeed,
  assertTrade
} from './helpers.js'

const SYMBOLS = ['XRPU21', 'UNIUSDT', 'XBTUSD', 'ADAUSDT', 'SOLUSDT', 'TRXU21', 'EOSUSDT', 'TRXUSDT', 'BCHUSD', 'MATICUSDT']
const DEPTH = 5
const RAW = cryptofeedReceived(BITMEX_WS)

/**
 * Trades the capture must give: every row of the `trade` table's `insert` messages. (The `partial` that
 * follows a subscribe is BitMEX's recent-trade history, not new trades.) BitMEX `side` is the taker's.
 */
function expectedTrades () {
  return RAW.filter((m) => m.table === 'trade' && m.action === 'insert').flatMap((m) => m.data).map((r) => ({
    symbol: r.symbol, id: r.trdMatchID, price: r.price, amount: r.size, side: r.side === 'Buy' ? 'buy' : 'sell', timestampMs: Date.parse(r.timestamp)
  }))
}

/**
 * The order book of every symbol rebuilt from orderBookL2 frames (levels by id: partial = all rows,
 * insert adds, update changes size, delete removes); returns each symbol's top levels after each of its
 * frames, from frame `from` on (the book before `from` is the starting point, as one state).
 * @param {any[]} frames recorded messages in order
 * @param {number} [from]
 * @returns {Map<string, {bids: any[][], asks: any[][]}[]>}
 */
function bookStates (frames, from = 0) {
  /** @type {Map<string, Map<number, {side: string, price: number, size: number}>>} */
  const books = new Map()
  const states = new Map(SYMBOLS.map((s) => [s, []]))
  const top = (symbol) => {
    const bids = new Map()
    const asks = new Map()
    for (const l of books.get(symbol).values()) (l.side === 'Buy' ? bids : asks).set(l.price, l.size)
    return { bids: topLevels(bids, 'bids', DEPTH), asks: topLevels(asks, 'asks', DEPTH) }
  }
  frames.forEach((m, i) => {
    if (i === from && from > 0) for (const s of books.keys()) states.get(s).push(top(s)) // the partial sent on re-subscribe
    if (m.table !== 'orderBookL2') return
    const symbol = m.action === 'partial' ? m.filter.symbol : m.data[0].symbol
    if (m.action === 'partial') books.set(symbol, new Map())
    const book = books.get(symbol)
    if (book === undefined) return
    for (const r of m.data) {
      if (m.action === 'partial' || m.action === 'insert') book.set(r.id, { side: r.side, price: r.price, size: r.size })
      else if (m.action === 'update') book.get(r.id).size = r.size
      else if (m.action === 'delete') book.delete(r.id)
    }
    if (i >= from) states.get(symbol).push(top(symbol))
  })
  return states
}

/** @param {any[]} snapshots tardis-dev book snapshots @param {Map<string, any[]>} states @param {string} what */
function assertBooks (snapshots, states, what) {
  for (const symbol of SYMBOLS) {
    const got = snapshots.filter((b) => b.symbol === symbol)
    const want = distinctTops(states.get(symbol), DEPTH)
    assert.equal(got.length, want.length, `${what} ${symbol}: book snapshots`)
    got.forEach((b, i) => {
      assert.equal(b.depth, DEPTH)
      assert.deepEqual(levelsOf(b.bids), want[i].bids, `${what} ${symbol} snapshot #${i} bids`)
      assert.deepEqual(levelsOf(b.asks), want[i].asks, `${what} ${symbol} snapshot #${i} asks`)
    })
  }
}

const open = (extra) => openReplay({
  replayPath: 'websocket',
  exchange: 'bitmex', symbols: SYMBOLS, dataTypes: ['trade', 'book_snapshot'], bookDepth: DEPTH, bookIntervalMs: 0,
  files: [BITMEX_WS], speed: 'max', log: memoryLog(), ...extra
})

describe('replay bitmex (cryptofeed capture)', () => {
  test('trades and book snapshots equal what the raw trade / orderBookL2 frames say', { timeout: 30000 }, async () => {
    const source = open()
    const msgs = await collect(source)
    assert.deepEqual(msgs.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    assert.equal(msgs.filter((m) => m.type === 'disconnect').length, 0)
    const trades = msgs.filter((m) => m.type === 'trade')
    const want = expectedTrades()
    assert.equal(want.length, 17, 'the capture holds 17 new trades')
    assert.equal(trades.length, want.length)
    trades.forEach((m, i) => assertTrade(m, want[i], 'bitmex', `trade #${i}`))
    const books = msgs.filter((m) => m.type === 'book_snapshot')
    assert.ok(books.length > 500, `book snapshots (${books.length})`)
    assertBooks(books, bookStates(RAW), 'no cut')
    assert.equal(source.stats.recording.control, 4, 'the connect line and the 3 sent subscribe lines are skipped')
    assert.equal(source.stats.recording.bad, 0)
    assert.equal(source.stats.server.clientProblems, 0, 'every subscribe of tardis-dev was understood')
    // only the subscribed tables went out: trade and orderBookL2 (not quote, not the recorder's acks)
    assert.equal(source.stats.server.sent, RAW.filter((m) => m.table === 'trade' || m.table === 'orderBookL2').length)
  })

  test('cutAfter: one disconnect naming the subscribed symbols; trades and books go on after the reconnect', { timeout: 30000 }, async () => {
    const cutAfter = 300
    const source = open({ cutAfter })
    const msgs = await collect(source)
    assert.equal(msgs.at(-1).reason, 'replay_finished')
    const at = msgs.findIndex((m) => m.type === 'disconnect')
    assert.ok(at > 0)
    assert.equal(msgs.filter((m) => m.type === 'disconnect').length, 1)
    assert.equal(msgs[at].exchange, 'bitmex')
    assert.deepEqual(msgs[at].symbols, SYMBOLS)
    assert.equal(source.stats.server.cuts, 1)
    assert.equal(source.stats.server.connections, 2)

    const trades = msgs.filter((m) => m.type === 'trade')
    const want = expectedTrades()
    assert.equal(trades.length, want.length, 'no trade lost around the drop')
    trades.forEach((m, i) => assertTrade(m, want[i], 'bitmex', `trade #${i}`))
    assert.ok(msgs.slice(at).some((m) => m.type === 'trade'), 'trades after the reconnect')

    // the server sent the subscribed tables' frames in recorded order and cut after `cutAfter` of them
    const sent = RAW.filter((m) => m.table === 'trade' || m.table === 'orderBookL2')
    const before = msgs.slice(0, at).filter((m) => m.type === 'book_snapshot')
    const after = msgs.slice(at).filter((m) => m.type === 'book_snapshot')
    assertBooks(before, bookStates(sent.slice(0, cutAfter)), 'before the cut')
    assert.ok(after.length > 100, `book snapshots after the reconnect (${after.length})`)
    assertBooks(after, bookStates(sent, cutAfter), 'after the cut')

    // and through the wire encoder: the disconnect frame has one row per subscribed symbol
    const frames = await throughWire(msgs, { exchange: 'bitmex', symbols: SYMBOLS, dataTypes: ['trade', 'book_snapshot'] })
    const disconnects = rowsOfType(frames, 'disconnect')
    assert.deepEqual(disconnects.map((r) => r.symbol), SYMBOLS.map((s) => ['bitmex', s]))
    assert.equal(disconnects[0].local_timestamp, toUs(msgs[at].localTimestamp))
    const wireTrades = rowsOfType(frames, 'trade')
    assert.deepEqual(wireTrades.map((r) => [r.symbol[1], r.id, r.price, r.amount, r.side, r.timestamp]),
      want.map((e) => [e.symbol, e.id, e.price, e.amount, e.side, e.timestampMs * 1000]))
  })

  test('derivative_ticker (instrument table) and liquidation (liquidation table), field by field', { timeout: 30000 }, async () => {
    // BitMEX's documented realtime messages (https://www.bitmex.com/app/wsAPI#Subscriptions, tables
    // `instrument` and `liquidation`; fields as in https://www.bitmex.com/api/explorer/#/Instrument and
    // #/Liquidation): a partial then updates of changed fields only; liquidation rows are orders
    // (orderID, side, price, leavesQty). ETHUSD is not subscribed and must not come out.
    const recorded = [
      { table: 'instrument', action: 'partial', keys: ['symbol'], types: {}, filter: { symbol: 'XBTUSD' }, data: [{ symbol: 'XBTUSD', state: 'Open', fundingRate: 0.0001, indicativeFundingRate: 0.000117, fundingTimestamp: '2021-07-23T04:00:00.000Z', indicativeSettlePrice: 32172.45, markPrice: 32170.12, openInterest: 593428374, lastPrice: 32175, timestamp: '2021-07-22T22:36:10.000Z' }] },
      { table: 'liquidation', action: 'partial', keys: ['orderID'], types: {}, filter: { symbol: 'XBTUSD' }, data: [] },
      { table: 'instrument', action: 'update', data: [{ symbol: 'XBTUSD', markPrice: 32168.5, indicativeSettlePrice: 32170.01, timestamp: '2021-07-22T22:36:15.000Z' }] },
      { table: 'liquidation', action: 'insert', data: [{ orderID: '6f2b1c1e-3d4a-4b5c-8d9e-0a1b2c3d4e5f', symbol: 'XBTUSD', side: 'Sell', price: 32150.5, leavesQty: 2000 }] },
      { table: 'instrument', action: 'update', data: [{ symbol: 'ETHUSD', markPrice: 2010.05, timestamp: '2021-07-22T22:36:15.500Z' }] },
      { table: 'liquidation', action: 'insert', data: [{ orderID: '0d9c8b7a-6f5e-4d3c-2b1a-f0e9d8c7b6a5', symbol: 'ETHUSD', side: 'Buy', price: 2011, leavesQty: 30 }] },
      { table: 'instrument', action: 'update', data: [{ symbol: 'XBTUSD', openInterest: 593430374, lastPrice: 32150.5, timestamp: '2021-07-22T22:36:16.000Z' }] },
      { table: 'liquidation', action: 'update', data: [{ orderID: '6f2b1c1e-3d4a-4b5c-8d9e-0a1b2c3d4e5f', symbol: 'XBTUSD', leavesQty: 1000 }] },
      { table: 'liquidation', action: 'insert', data: [{ orderID: 'a1b2c3d4-e5f6-4a5b-9c8d-7e6f5a4b3c2d', symbol: 'XBTUSD', side: 'Buy', price: 32190, leavesQty: 500 }] },
      { table: 'instrument', action: 'update', data: [{ symbol: 'XBTUSD', fundingRate: 0.000117, indicativeFundingRate: 0.00009, fundingTimestamp: '2021-07-23T12:00:00.000Z', timestamp: '2021-07-23T04:00:00.000Z' }] }
    ]
    const file = writeCryptofeed(tmpDir(), 'bitmex-instrument-liquidation.txt', 'wss://ws.bitmex.com/realtime', recorded)
    const source = openReplay({ exchange: 'bitmex', symbols: ['XBTUSD'], dataTypes: ['derivative_ticker', 'liquidation'], files: [file], speed: 'max', log: memoryLog() })
    const msgs = await collect(source)
    assert.equal(msgs.at(-1).reason, 'replay_finished')

    // expected tickers: the instrument row as BitMEX keeps it (partial, then updated fields) after each
    // XBTUSD message; BitMEX names: indicativeSettlePrice = index, indicativeFundingRate = predicted
    const row = {}
    const wantTickers = recorded.filter((m) => m.table === 'instrument' && m.data[0].symbol === 'XBTUSD').map((m) => {
      Object.assign(row, m.data[0])
      return {
        lastPrice: row.lastPrice, openInterest: row.openInterest, fundingRate: row.fundingRate, fundingTimestampUs: Date.parse(row.fundingTimestamp) * 1000,
        predictedFundingRate: row.indicativeFundingRate, indexPrice: row.indicativeSettlePrice, markPrice: row.markPrice, timestampUs: Date.parse(row.timestamp) * 1000
      }
    })
    const tickers = msgs.filter((m) => m.type === 'derivative_ticker')
    assert.equal(tickers.length, wantTickers.length)
    tickers.forEach((t, i) => {
      const e = wantTickers[i]
      assert.equal(t.symbol, 'XBTUSD')
      assert.deepEqual(
        [t.lastPrice, t.openInterest, t.fundingRate, toUs(t.fundingTimestamp), t.predictedFundingRate, t.indexPrice, t.markPrice, toUs(t.timestamp)],
        [e.lastPrice, e.openInterest, e.fundingRate, e.fundingTimestampUs, e.predictedFundingRate, e.indexPrice, e.markPrice, e.timestampUs], `ticker #${i}`)
    })

    // expected liquidations: the inserted XBTUSD orders; side = the liquidation order's side (Sell: a
    // long was liquidated), amount = leavesQty; BitMEX gives no time, so timestamp = arrival time
    const wantLiq = recorded.filter((m) => m.table === 'liquidation' && m.action === 'insert').flatMap((m) => m.data).filter((r) => r.symbol === 'XBTUSD')
      .map((r) => ({ id: r.orderID, price: r.price, amount: r.leavesQty, side: r.side === 'Buy' ? 'buy' : 'sell' }))
    const liqs = msgs.filter((m) => m.type === 'liquidation')
    assert.deepEqual(liqs.map((l) => ({ id: l.id, price: l.price, amount: l.amount, side: l.side })), wantLiq)
    for (const l of liqs) assert.equal(toUs(l.timestamp), toUs(l.localTimestamp))

    // through the wire encoder
    const frames = await throughWire(msgs, { exchange: 'bitmex', symbols: ['XBTUSD'], dataTypes: ['derivative_ticker', 'liquidation'] })
    assert.deepEqual(rowsOfType(frames, 'derivative_ticker').map((r) => [r.symbol[1], r.last_price, r.open_interest, r.funding_rate, r.funding_timestamp, r.predicted_funding_rate, r.index_price, r.mark_price, r.timestamp]),
      wantTickers.map((e) => ['XBTUSD', e.lastPrice, e.openInterest, e.fundingRate, e.fundingTimestampUs, e.predictedFundingRate, e.indexPrice, e.markPrice, e.timestampUs]))
    assert.deepEqual(rowsOfType(frames, 'liquidation').map((r) => [r.symbol[1], r.id, r.price, r.amount, r.side]),
      wantLiq.map((e) => ['XBTUSD', e.id, e.price, e.amount, e.side]))
  })
})
