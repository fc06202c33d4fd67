// tardis-dev normalized messages -> wire rows, with the writers made from proto/wire.json's `tardis`
// names. Each expected row is written out by hand from the message (the field names in tardis-dev's
// types.ts), not from the schema.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { writers, makeWriter, WRITER_TYPES, dateFromUs } from '../src/convert.js'
import { FrameBuilder, decodeFrame, frameToRows, compileSchema, schema, WIRE_JSON_PATH } from '../src/wire/index.js'

/** One message through its writer into a frame, decoded again. @param {any} m @param {any} [s] */
function rowOf (m, s = schema, writer = writers[m.type]) {
  const b = new FrameBuilder(writer.frameType, writer.header(m), { schema: s })
  writer.write(b, m)
  const f = decodeFrame(b.build({ seq: 0, session: 's', sent_mono_us: 0 }), s)
  return { header: f.header, row: frameToRows(f, {}, s)[0] }
}

const T = 1723161255342123
const L = 1723161254087896
const common = { exchange: 'deribit', symbol: 'BTC-PERPETUAL', timestamp: dateFromUs(T), localTimestamp: dateFromUs(L) }

describe('convert: rows from tardis-dev messages', () => {
  test('a writer for every data frame type, by the tardis message type of the same name', () => {
    assert.deepEqual(WRITER_TYPES, ['trade', 'book_snapshot', 'derivative_ticker', 'liquidation', 'option_summary'])
    assert.equal(writers.constructor, undefined)
    assert.equal(writers.disconnect, undefined, 'a control message')
  })

  test('trade and liquidation: price, amount, taker side, id ("" when undefined)', () => {
    for (const type of ['trade', 'liquidation']) {
      const { row } = rowOf({ type, ...common, id: undefined, price: 32150, amount: 2500, side: 'sell' })
      assert.deepEqual(row, { sym: 0, timestamp: T, local_timestamp: L, price: 32150, amount: 2500, side: 'sell', id: '' }, type)
    }
    assert.equal(rowOf({ type: 'trade', ...common, id: 42, price: '1.5', amount: 2, side: 'bogus' }).row.side, 'unknown')
    assert.equal(rowOf({ type: 'trade', ...common, id: 42, price: '1.5', amount: 2, side: 'buy' }).row.price, 1.5)
  })

  test('derivative_ticker: every field, the next funding time in µs, undefined -> missing', () => {
    const { row } = rowOf({
      type: 'derivative_ticker', ...common, lastPrice: 32170.5, openInterest: 1004650, fundingRate: 0.00001,
      fundingTimestamp: dateFromUs(1723190400000000), predictedFundingRate: undefined, indexPrice: 32168.21, markPrice: 32169.9
    })
    assert.deepEqual(row, {
      sym: 0, timestamp: T, local_timestamp: L, last_price: 32170.5, open_interest: 1004650, funding_rate: 0.00001,
      funding_timestamp: 1723190400000000, predicted_funding_rate: null, index_price: 32168.21, mark_price: 32169.9
    })
  })

  test('option_summary: IVs, greeks, expiration, underlying', () => {
    const { row } = rowOf({
      type: 'option_summary', ...common, symbol: 'BTC-24SEP21-8000-P', optionType: 'put', strikePrice: 8000,
      expirationDate: new Date(Date.UTC(2021, 8, 24, 8)), bestBidPrice: 0.0005, bestBidAmount: 10, bestBidIV: 180.5,
      bestAskPrice: 0.001, bestAskAmount: 3, bestAskIV: 200.25, lastPrice: undefined, openInterest: 123.4, markPrice: 0.0007,
      markIV: 190.1, delta: -0.01, gamma: 0.00001, vega: 0.5, theta: -1.2, rho: -0.03, underlyingPrice: 32200.5, underlyingIndex: 'SYN.BTC-24SEP21'
    })
    assert.deepEqual(row, {
      sym: 0, timestamp: T, local_timestamp: L, option_type: 'put', strike_price: 8000, expiration: Date.UTC(2021, 8, 24, 8) * 1000,
      best_bid_price: 0.0005, best_bid_amount: 10, best_bid_iv: 180.5, best_ask_price: 0.001, best_ask_amount: 3, best_ask_iv: 200.25,
      last_price: null, open_interest: 123.4, mark_price: 0.0007, mark_iv: 190.1, delta: -0.01, gamma: 0.00001, vega: 0.5,
      theta: -1.2, rho: -0.03, underlying_price: 32200.5, underlying_index: 'SYN.BTC-24SEP21'
    })
  })

  test('book_snapshot: levels from bids[]/asks[], depth and interval in the header, short books padded missing', () => {
    const m = {
      type: 'book_snapshot', ...common, name: 'book_snapshot_3_100ms', depth: 3, interval: 100,
      bids: [{ price: 100, amount: 1 }, { price: 99.5, amount: 2 }], asks: [{ price: 101, amount: 3 }, undefined, { price: 102, amount: 5 }]
    }
    assert.equal(writers.book_snapshot.key(m), 'book_snapshot:3:100')
    const { header, row } = rowOf(m)
    assert.equal(header.depth, 3)
    assert.equal(header.interval_ms, 100)
    assert.deepEqual(row, {
      sym: 0, timestamp: T, local_timestamp: L,
      bid_price: [100, 99.5, null], bid_amount: [1, 2, null], ask_price: [101, null, 102], ask_amount: [3, null, 5]
    })
  })

  test('µs fast path: numeric timestampUs / localTimestampUs (the synthetic source) win over the Dates', () => {
    const { row } = rowOf({ type: 'trade', ...common, timestampUs: 5, localTimestampUs: 6, id: '1', price: 1, amount: 1, side: 'buy' })
    assert.equal(row.timestamp, 5)
    assert.equal(row.local_timestamp, 6)
  })

  test('a column added to wire.json with its tardis name is written without a code change', () => {
    const json = JSON.parse(readFileSync(WIRE_JSON_PATH, 'utf8'))
    json.frames.trade.columns.push(['venue_seq', 'u32'], ['trade_time', 'i64'], ['maker', 'u8', 'side'])
    Object.assign(json.frames.trade.tardis, { venue_seq: 'venueSeq', trade_time: 'tradeTime', maker: 'makerSide' })
    const s2 = compileSchema(json, 'test schema')
    const w = makeWriter(s2.frames.get('trade'))
    const { row } = rowOf({ type: 'trade', ...common, id: 'x', price: 1, amount: 2, side: 'buy', venueSeq: 7, tradeTime: dateFromUs(T + 1), makerSide: 'sell' }, s2, w)
    assert.deepEqual(row, { sym: 0, timestamp: T, local_timestamp: L, price: 1, amount: 2, side: 'buy', id: 'x', venue_seq: 7, trade_time: T + 1, maker: 'sell' })
    delete json.frames.trade.tardis.venue_seq
    assert.throws(() => makeWriter(compileSchema(json, 'test schema').frames.get('trade')), /trade column venue_seq has no tardis name in wire\.json/)
  })

  test('the tardis names are read from wire.json: convert.js names none of them', () => {
    const src = readFileSync(new URL('../src/convert.js', import.meta.url), 'utf8')
    for (const name of ['fundingRate', 'fundingTimestamp', 'expirationDate', 'bestBidIV', 'markIV', 'underlyingIndex', 'strikePrice', 'lastPrice']) {
      assert.ok(!src.includes(name), `convert.js mentions ${name}`)
    }
    const spec = schema.frames.get('option_summary')
    assert.equal(spec.columns.find((c) => c.name === 'mark_iv').tardis.path, 'markIV')
    assert.equal(schema.frames.get('book_snapshot').headerTardis.interval_ms.field, 'interval')
  })
})

describe('wire.json tardis names', () => {
  const load = (edit) => {
    const json = JSON.parse(readFileSync(WIRE_JSON_PATH, 'utf8'))
    edit(json)
    return () => compileSchema(json, 'test schema')
  }
  test('every column but sym of a frame made from tardis-dev messages has one', () => {
    for (const spec of schema.frames.values()) {
      if (!spec.fromTardis) continue
      for (const col of spec.columns) {
        if (col.name === 'sym') assert.equal(col.tardis, null)
        else assert.notEqual(col.tardis, null, `${spec.type}.${col.name}`)
      }
    }
    assert.deepEqual([...schema.frames.values()].filter((s) => s.fromTardis).map((s) => s.type),
      ['trade', 'book_snapshot', 'derivative_ticker', 'liquidation', 'option_summary', 'disconnect'])
  })
  test('bad names are rejected with the place', () => {
    assert.throws(load((j) => { j.frames.trade.tardis.price = 'pri ce' }), /frames\.trade\.tardis\.price: "pri ce" is not a field name/)
    assert.throws(load((j) => { j.frames.trade.tardis.nope = 'x' }), /frames\.trade\.tardis\.nope: not a column or header field/)
    assert.throws(load((j) => { j.frames.book_snapshot.tardis.bid_price = 'bidPrice' }), /a per-level column needs array\[\]\.field/)
    assert.throws(load((j) => { j.frames.trade.tardis.price = 'levels[].price' }), /array\[\]\.field is only for a per-level column/)
  })
})
