import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { Batcher } from '../src/batcher.js'
import { decodeFrame, frameToRows } from '../src/wire/index.js'
import { dateFromUs } from '../src/convert.js'
import { memoryLog } from '../src/log.js'

const START = { source: 'test', exchanges: ['binance'], data_types: ['trade'], speed: 'max', ingester_version: '0.1.0' }

/** A batcher whose frames are decoded into `frames` as the "sender" takes them. */
function setup (opts = {}) {
  const frames = []
  const log = memoryLog()
  const batcher = new Batcher({
    send: async (f) => { frames.push(decodeFrame(f.build())) },
    session: 'sess',
    subscribed: { binance: ['BTCUSDT', 'ETHUSDT'] },
    log,
    ...opts
  })
  batcher.start(START)
  return { batcher, frames, log }
}

let nextId = 0
const trade = (symbol = 'BTCUSDT', extra = {}) => ({
  type: 'trade', exchange: 'binance', symbol, id: String(nextId++), price: 100.5, amount: 0.25, side: 'buy',
  timestamp: dateFromUs(1723161255342123), localTimestamp: dateFromUs(1723161254087896), ...extra
})
const disconnect = (extra = {}) => ({ type: 'disconnect', exchange: 'binance', localTimestamp: dateFromUs(1723161300000000), ...extra })
const settle = async () => { await nextTurn(); await nextTurn() }

describe('batcher', () => {
  test('start frame first: seq 0, session, subscribed symbols', async () => {
    const { frames } = setup()
    await settle()
    assert.equal(frames.length, 1)
    const h = frames[0].header
    assert.equal(h.type, 'start')
    assert.equal(h.seq, 0)
    assert.equal(h.session, 'sess')
    assert.deepEqual(h.symbols, [['binance', 'BTCUSDT'], ['binance', 'ETHUSDT']])
    assert.equal(h.source, 'test')
    assert.equal(typeof h.recv_mono_us, 'number')
    assert.equal(typeof h.sent_mono_us, 'number')
  })

  test('a batch is capped at maxBatch rows; the rest goes at the end of the event-loop turn', async () => {
    const { batcher, frames } = setup({ maxBatch: 1000 })
    await settle()
    let waits = 0
    for (let i = 0; i < 2500; i++) {
      const p = batcher.push(trade(i % 2 ? 'ETHUSDT' : 'BTCUSDT'))
      if (p !== undefined) { waits++; await p } // as the pipeline does
    }
    assert.equal(waits, 2, 'push hands back a promise when a full frame had to go out')
    assert.equal(frames.length, 3, 'the last 500 rows wait for the end of the turn')
    await settle()
    const data = frames.slice(1)
    assert.deepEqual(data.map((f) => [f.header.type, f.header.n, f.header.seq]), [['trade', 1000, 1], ['trade', 1000, 2], ['trade', 500, 3]])
    const ids = data.flatMap((f) => f.columns.id).map(Number)
    assert.deepEqual(ids, ids.slice().sort((a, b) => a - b), 'rows keep their order')
    assert.deepEqual({ ...batcher.rows }, { trade: 2500 })
  })

  test('rows of one turn share a frame; recv_mono_us is the oldest row, before sent_mono_us', async () => {
    const { batcher, frames } = setup()
    batcher.push(trade())
    batcher.push(trade('ETHUSDT'))
    batcher.push(trade())
    await settle()
    assert.equal(frames.length, 2)
    const f = frames[1]
    assert.equal(f.header.n, 3)
    assert.deepEqual(f.header.symbols, [['binance', 'BTCUSDT'], ['binance', 'ETHUSDT']])
    assert.deepEqual([...f.columns.sym], [0, 1, 0])
    assert.ok(f.header.recv_mono_us <= f.header.sent_mono_us)
    assert.deepEqual(frameToRows(f)[0], {
      sym: 0, timestamp: 1723161255342123, local_timestamp: 1723161254087896, price: 100.5, amount: 0.25, side: 'buy', id: f.columns.id[0]
    })
  })

  test('a control message flushes every pending batch first (ordering kept)', async () => {
    const { batcher, frames } = setup()
    batcher.push(trade())
    batcher.push(trade())
    batcher.push(disconnect({ symbols: ['btcusdt'] }))
    batcher.push(trade('ETHUSDT'))
    batcher.push(disconnect()) // no symbols: the subscribed ones
    batcher.push(trade())
    batcher.end({ reason: 'replay_finished', error: null, counts: () => ({ trade: batcher.rows.trade }) })
    await settle()
    assert.deepEqual(frames.map((f) => [f.header.type, f.header.n, f.header.seq]), [
      ['start', 0, 0], ['trade', 2, 1], ['disconnect', 1, 2], ['trade', 1, 3], ['disconnect', 2, 4], ['trade', 1, 5], ['end', 0, 6]
    ])
    assert.deepEqual(frames[2].header.symbols, [['binance', 'BTCUSDT']], 'disconnect symbols upper-cased')
    assert.deepEqual(frameToRows(frames[4]), [{ sym: 0, local_timestamp: 1723161300000000 }, { sym: 1, local_timestamp: 1723161300000000 }])
    assert.deepEqual(frames[4].header.symbols, [['binance', 'BTCUSDT'], ['binance', 'ETHUSDT']])
    const end = frames[6].header
    assert.equal(end.reason, 'replay_finished')
    assert.equal(end.error, null)
    assert.deepEqual(end.counts, { trade: 4 })
  })

  test('unknown message types are counted per type and logged once, never thrown', async () => {
    const { batcher, frames, log } = setup()
    batcher.push({ type: 'book_ticker', exchange: 'binance', symbol: 'BTCUSDT' })
    batcher.push({ type: 'book_ticker', exchange: 'binance', symbol: 'BTCUSDT' })
    batcher.push({ type: 'trade_bar', exchange: 'binance', symbol: 'BTCUSDT' })
    batcher.push(trade())
    await settle()
    assert.deepEqual({ ...batcher.unknown }, { book_ticker: 2, trade_bar: 1 })
    assert.equal(batcher.unknownTotal, 3)
    assert.equal(log.lines.filter((l) => l.includes('book_ticker')).length, 1)
    assert.equal(frames.at(-1).header.n, 1)
  })

  test('back-pressure: while a send is pending, push hands back that promise', async () => {
    let release
    const gate = new Promise((resolve) => { release = resolve })
    const frames = []
    const batcher = new Batcher({
      send: async (f) => { await gate; frames.push(decodeFrame(f.build())) },
      maxBatch: 2
    })
    batcher.start(START)
    batcher.push(trade())
    const full = batcher.push(trade())
    assert.ok(full instanceof Promise)
    const next = batcher.push(trade())
    assert.ok(next instanceof Promise, 'still blocked: the caller must wait')
    let done = false
    full.then(() => { done = true })
    await settle()
    assert.equal(done, false)
    release()
    await full
    await settle()
    assert.deepEqual(frames.map((f) => f.header.type), ['start', 'trade', 'trade'])
  })

  test('every message type maps to its frame columns', async () => {
    const { batcher, frames } = setup()
    const ts = dateFromUs(1626912000100000)
    const lt = dateFromUs(1626912000105123)
    batcher.push({
      type: 'book_snapshot', exchange: 'bitmex', symbol: 'XBTUSD', name: 'book_snapshot_3_100ms', depth: 3, interval: 100,
      bids: [{ price: 32000.5, amount: 100 }, { price: 32000, amount: 2500 }, { price: undefined, amount: undefined }],
      asks: [{ price: 32001, amount: 300 }],
      timestamp: ts, localTimestamp: lt
    })
    batcher.push({
      type: 'derivative_ticker', exchange: 'binance-futures', symbol: 'BTCUSDT', lastPrice: 61800.1, openInterest: undefined,
      fundingRate: 0.0001, fundingTimestamp: new Date(1723190400000), predictedFundingRate: undefined, indexPrice: 61790.5,
      markPrice: 61801.25, timestamp: ts, localTimestamp: lt
    })
    batcher.push({ type: 'liquidation', exchange: 'binance-futures', symbol: 'BTCUSDT', id: undefined, price: 31950, amount: 1.2, side: 'sell', timestamp: ts, localTimestamp: lt })
    batcher.push({
      type: 'option_summary', exchange: 'deribit', symbol: 'BTC-30JUL21-40000-C', optionType: 'call', strikePrice: 40000,
      expirationDate: new Date(1627632000000), bestBidPrice: 0.0035, bestBidAmount: 12.5, bestBidIV: 71.2, bestAskPrice: 0.004,
      bestAskAmount: undefined, bestAskIV: 74.05, lastPrice: undefined, openInterest: 1523.4, markPrice: 0.0037, markIV: 72.6,
      delta: 0.11, gamma: 0.00004, vega: 6.2, theta: -30.1, rho: 1.4, underlyingPrice: 32010.5, underlyingIndex: 'SYN.BTC-30JUL21',
      timestamp: ts, localTimestamp: lt
    })
    batcher.push({ type: 'trade', exchange: 'synthetic', symbol: 'SYN001', id: '7', price: 1, amount: 2, side: 'sell', timestampUs: 5, localTimestampUs: 6 })
    await settle()
    const byType = Object.fromEntries(frames.slice(1).map((f) => [f.header.type, f]))
    assert.deepEqual(Object.keys(byType).sort(), ['book_snapshot', 'derivative_ticker', 'liquidation', 'option_summary', 'trade'])
    const book = byType.book_snapshot
    assert.equal(book.header.depth, 3)
    assert.equal(book.header.interval_ms, 100)
    assert.deepEqual(frameToRows(book), [{
      sym: 0, timestamp: 1626912000100000, local_timestamp: 1626912000105123,
      bid_price: [32000.5, 32000, null], bid_amount: [100, 2500, null], ask_price: [32001, null, null], ask_amount: [300, null, null]
    }])
    assert.deepEqual(frameToRows(byType.derivative_ticker), [{
      sym: 0, timestamp: 1626912000100000, local_timestamp: 1626912000105123, last_price: 61800.1, open_interest: null,
      funding_rate: 0.0001, funding_timestamp: 1723190400000000, predicted_funding_rate: null, index_price: 61790.5, mark_price: 61801.25
    }])
    assert.deepEqual(frameToRows(byType.liquidation), [{ sym: 0, timestamp: 1626912000100000, local_timestamp: 1626912000105123, price: 31950, amount: 1.2, side: 'sell', id: '' }])
    const opt = frameToRows(byType.option_summary)[0]
    assert.equal(opt.option_type, 'call')
    assert.equal(opt.expiration, 1627632000000000)
    assert.equal(opt.best_ask_amount, null)
    assert.equal(opt.underlying_index, 'SYN.BTC-30JUL21')
    assert.deepEqual(frameToRows(byType.trade), [{ sym: 0, timestamp: 5, local_timestamp: 6, price: 1, amount: 2, side: 'sell', id: '7' }])
    assert.deepEqual(byType.trade.header.symbols, [['synthetic', 'SYN001']])
  })
})
