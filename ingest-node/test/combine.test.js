// Several exchanges in one session: the merge (by exchange time for replays, as they come in real time),
// and a replay of a Binance and a Deribit recording together against the two single-exchange replays.
import { test, describe, before } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { mergeSources, exchangeTimeUs, openCombined } from '../src/sources/combine.js'
import { openSource } from '../src/sources/index.js'
import { openReplay } from '../src/sources/replay.js'
import { openTardisMachine, machineUrl } from '../src/sources/tardis-machine.js'
import { dateFromUs, toUs } from '../src/convert.js'
import { memoryLog } from '../src/log.js'
import { SPOT_0808, tmpDir, headLines, writeGz, expectedTrades, collect, writeCryptofeed, throughWire, rowsOfType } from './helpers.js'

/** A trade of `exchange` at exchange time `ms` (local time: 1 s later). */
const at = (exchange, ms, id, extra = {}) => ({
  type: 'trade', exchange, symbol: 'X', id, price: 1, amount: 1, side: 'buy', timestamp: dateFromUs(ms * 1000), localTimestamp: dateFromUs(ms * 1000 + 1e6), ...extra
})

/** @param {any[]} messages @param {{delayMs?: number, end?: any, onReturn?: () => void}} [o] */
function fromList (messages, { delayMs = 0, end = { type: 'end', reason: 'replay_finished', error: null }, onReturn } = {}) {
  return {
    pulled: 0,
    async * [Symbol.asyncIterator] () {
      try {
        for (const m of messages) {
          if (delayMs > 0) await sleep(delayMs)
          this.pulled++
          yield m
        }
        if (end !== null) yield end
      } finally {
        onReturn?.()
      }
    }
  }
}

const ids = (msgs) => msgs.map((m) => (m.type === 'end' ? `end:${m.reason}` : m.type === 'disconnect' ? `disconnect:${m.exchange}` : m.id))

describe('mergeSources', () => {
  test('exchange time: the earliest head first, ties to the source listed first, each source\'s own order kept', async () => {
    const a = [at('a', 10, 'a10'), at('a', 20, 'a20'), at('a', 30, 'a30'), at('a', 25, 'a25-late'), at('a', 40, 'a40')]
    const b = [at('b', 5, 'b5'), at('b', 20, 'b20'), at('b', 35, 'b35')]
    const out = await collect(mergeSources([fromList(a), fromList(b, { delayMs: 2 })], { order: 'exchange-time', labels: ['a', 'b'] }))
    // worked out by hand: b5 < a10; a10; a20 ties b20 -> a first; then a30 vs b20 -> b20; a30 vs b35 -> a30;
    // a25-late (a's own order) vs b35 -> a25-late; a40 vs b35 -> b35; a40
    assert.deepEqual(ids(out), ['b5', 'a10', 'a20', 'b20', 'a30', 'a25-late', 'b35', 'a40', 'end:replay_finished'])
  })

  test('a message without an exchange time (a disconnect, timestamp = localTimestamp) keeps its place after its source\'s previous one', async () => {
    const local = at('a', 12, 'a-local')
    local.timestamp = local.localTimestamp // tardis-dev's fallback when the exchange gives no time
    assert.equal(exchangeTimeUs(local), null)
    assert.equal(exchangeTimeUs({ type: 'disconnect', exchange: 'a', localTimestamp: new Date() }), null)
    assert.equal(exchangeTimeUs(at('a', 12, 'x')), 12000)
    const a = [at('a', 10, 'a10'), { type: 'disconnect', exchange: 'a', localTimestamp: dateFromUs(99e9) }, local, at('a', 30, 'a30')]
    const b = [at('b', 11, 'b11'), at('b', 20, 'b20')]
    const out = await collect(mergeSources([fromList(a), fromList(b)], { order: 'exchange-time' }))
    assert.deepEqual(ids(out), ['a10', 'disconnect:a', 'a-local', 'b11', 'b20', 'a30', 'end:replay_finished'])
  })

  test('arrival: as the messages come, a slow source never holds back a fast one', async () => {
    const slow = fromList([at('slow', 1, 's1')], { delayMs: 150 })
    const fast = fromList([at('fast', 100, 'f100'), at('fast', 200, 'f200')])
    const out = await collect(mergeSources([slow, fast], { order: 'arrival' }))
    assert.deepEqual(ids(out), ['f100', 'f200', 's1', 'end:replay_finished'])
  })

  test('the end: replay_finished only when every source finished so; an error ends at once, queued messages first, named by its source', async () => {
    const closed = await collect(mergeSources([fromList([at('a', 1, 'a1')]), fromList([], { end: { type: 'end', reason: 'source_closed', error: null } })], { order: 'exchange-time' }))
    assert.deepEqual(ids(closed), ['a1', 'end:source_closed'])
    const noEnd = await collect(mergeSources([fromList([at('a', 1, 'a1')], { end: null })], { order: 'arrival' }))
    assert.deepEqual(ids(noEnd), ['a1', 'end:source_closed'])

    let returned = false
    const endless = { async * [Symbol.asyncIterator] () { try { yield at('b', 50, 'b50'); await new Promise(() => {}) } finally { returned = true } } }
    const failing = fromList([at('a', 10, 'a10'), at('a', 60, 'a60')], { end: { type: 'end', reason: 'error', error: 'REST snapshot failed' } })
    const out = await collect(mergeSources([failing, endless], { order: 'exchange-time', labels: ['binance', 'deribit'] }))
    assert.deepEqual(ids(out), ['a10', 'b50', 'a60', 'end:error'])
    assert.equal(out.at(-1).error, 'binance: REST snapshot failed')
    await sleep(10)
    assert.equal(returned, false, 'a source stuck in next() is asked to return, not awaited')
  })

  test('a stopped merge stops every source', async () => {
    let returns = 0
    const a = fromList([at('a', 1, 'a1'), at('a', 2, 'a2')], { onReturn: () => returns++ })
    const b = fromList([at('b', 1, 'b1'), at('b', 2, 'b2')], { onReturn: () => returns++ })
    for await (const m of mergeSources([a, b], { order: 'exchange-time' })) { if (m.id === 'b1') break }
    await sleep(10)
    assert.equal(returns, 2)
  })

  test('back-pressure: a source ahead in exchange time is held (hold()) or, without hold(), not read past highWater', async () => {
    const ahead = Array.from({ length: 50 }, (_, i) => at('a', 1000 + i, `a${i}`))
    const plain = fromList(ahead)
    const behind = fromList([at('b', 1, 'b1'), at('b', 2, 'b2')], { delayMs: 40 })
    const stats = { yielded: [], maxQueued: [], holds: [] }
    const merged = mergeSources([plain, behind], { order: 'exchange-time', highWater: 8, lowWater: 4, stats })
    const first = await merged.next()
    assert.equal(first.value.id, 'b1')
    assert.ok(plain.pulled <= 8, `read ${plain.pulled} of the source ahead while the other was behind`)
    const rest = await collect(merged)
    assert.equal(rest.filter((m) => m.type === 'trade').length, 51, 'nothing lost')
    assert.ok(stats.holds[0] >= 1)

    const calls = []
    const holdable = Object.assign(fromList(ahead), { hold: (on) => calls.push(on) })
    const out = await collect(mergeSources([holdable, fromList([at('b', 1, 'b1')], { delayMs: 40 })], { order: 'exchange-time', highWater: 8, lowWater: 4 }))
    assert.equal(out.length, 52)
    assert.deepEqual(calls.slice(0, 2), [true, false], 'asked to hold, then to go on')
    assert.equal(holdable.pulled, 50, 'a source that can hold is read on (a replay server that waits for its client would take it for dead)')
  })
})

describe('openCombined / tardis-machine', () => {
  test('per exchange: what is streamed and why not; ledger counts summed; an exchange listed twice is refused', async () => {
    const fake = ({ exchange, dataTypes }) => Object.assign(fromList([at(exchange, exchange === 'binance' ? 2 : 1, `${exchange}-1`)]), {
      stats: { n: 1 },
      dataTypes: dataTypes.filter((t) => t !== 'liquidation'),
      unavailable: dataTypes.includes('liquidation') ? [{ type: 'liquidation', reason: `none on ${exchange}` }] : [],
      ledgerCounts: () => ({ raw: { read: 10, sent: 5 }, normalized: { trade: 1 }, internal: { book_change: 2 } })
    })
    const source = openCombined({
      open: fake,
      order: 'exchange-time',
      streams: [
        { exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade', 'liquidation'] },
        { exchange: 'bitmex', symbols: ['XBTUSD'], dataTypes: ['trade', 'derivative_ticker', 'liquidation'] }
      ]
    })
    assert.deepEqual(source.dataTypes, ['trade', 'derivative_ticker'])
    assert.deepEqual(source.unavailable, [{ type: 'liquidation', reason: 'binance: none on binance; bitmex: none on bitmex' }])
    assert.deepEqual(source.streams.map((s) => [s.exchange, s.dataTypes]), [['binance', ['trade']], ['bitmex', ['trade', 'derivative_ticker']]])
    assert.deepEqual(ids(await collect(source)), ['bitmex-1', 'binance-1', 'end:replay_finished'])
    assert.deepEqual(source.ledgerCounts(), { raw: { read: 20, sent: 10 }, normalized: { trade: 2 }, internal: { book_change: 4 } })
    assert.deepEqual(source.stats.merge.yielded, [1, 1])
    assert.throws(() => openCombined({ open: fake, order: 'arrival', streams: [{ exchange: 'a', symbols: ['x'], dataTypes: ['trade'] }, { exchange: 'a', symbols: ['y'], dataTypes: ['trade'] }] }), /listed twice/)
    assert.throws(() => openSource({ source: 'synthetic', streams: [] }), /synthetic: one exchange only/)
  })

  test('tardis-machine: several exchanges are one connection with an array of options', () => {
    const url = new URL(machineUrl({
      url: 'ws://h:8001/',
      bookDepth: 5,
      bookIntervalMs: 0,
      streams: [{ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade', 'book_snapshot'] }, { exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['derivative_ticker'] }]
    }))
    assert.equal(url.pathname, '/ws-stream-normalized')
    assert.deepEqual(JSON.parse(url.searchParams.get('options')), [
      { exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade', 'book_snapshot_5_0ms'], withDisconnectMessages: true },
      { exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['derivative_ticker'], withDisconnectMessages: true }
    ])
    const source = openTardisMachine({ url: 'ws://h:8001', streams: [{ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'] }, { exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['trade', 'derivative_ticker'] }] })
    assert.deepEqual(source.dataTypes, ['trade', 'derivative_ticker'])
    assert.deepEqual(source.streams.map((s) => s.exchange), ['binance', 'deribit'])
  })
})

describe('replay of a Binance and a Deribit recording together', () => {
  const BINANCE = { exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade', 'book_snapshot'] }
  const DERIBIT = { exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['trade', 'derivative_ticker'] }
  let binanceFile
  let deribitFile
  let expected
  before(async () => {
    const lines = await headLines(SPOT_0808, 4000)
    binanceFile = writeGz(tmpDir(), 'spot_slice.gz', lines)
    expected = expectedTrades(lines)
    const first = expected[0].timestampMs
    const last = expected.at(-1).timestampMs
    // Deribit's documented notifications (https://docs.deribit.com/#trades-instrument_name-interval,
    // #ticker-instrument_name-interval) at exchange times before, inside (one equal to the first Binance
    // trade's) and after the Binance slice, so the merged stream interleaves them
    let id = 0
    const trades = (ts, direction, price, amount) => ({
      jsonrpc: '2.0', method: 'subscription', params: { channel: 'trades.BTC-PERPETUAL.raw', data: [{ trade_seq: ++id, trade_id: `${id}`, timestamp: ts, tick_direction: 0, price, mark_price: price, instrument_name: 'BTC-PERPETUAL', index_price: price, direction, amount }] }
    })
    const ticker = (ts, price) => ({
      jsonrpc: '2.0', method: 'subscription', params: { channel: 'ticker.BTC-PERPETUAL.raw', data: { instrument_name: 'BTC-PERPETUAL', state: 'open', timestamp: ts, last_price: price, index_price: price - 2, mark_price: price + 1, open_interest: 1004650, current_funding: 0.00001, funding_8h: 0.00002, best_bid_price: price - 0.5, best_ask_price: price } }
    })
    const recorded = [
      ticker(first - 1000, 61000), trades(first, 'buy', 61000.5, 100), trades(first + 5000, 'sell', 61010, 2500),
      ticker(first + 12000, 61020), trades(Math.floor((first + last) / 2), 'buy', 61030, 10), trades(last + 2000, 'sell', 61040, 70)
    ]
    deribitFile = writeCryptofeed(tmpDir(), 'deribit-perpetual.txt', 'wss://www.deribit.com/ws/api/v2', recorded, first / 1000 - 1)
  })

  /** A message as the processor sees it, without its arrival time (which differs run to run). */
  const content = ({ localTimestamp, ...rest }) => rest
  /** The wire rows of one type and exchange, without local_timestamp. */
  const rowsOf = (frames, type, exchange) => rowsOfType(frames, type).filter((r) => r.symbol[0] === exchange).map(({ local_timestamp, sym, ...r }) => r)

  test('yields exactly the messages and wire rows of the two single-exchange replays, in exchange-time order', { timeout: 60000 }, async () => {
    const single = {
      binance: await collect(openReplay({ ...BINANCE, files: [binanceFile], speed: 'max', replayPath: 'websocket', log: memoryLog() })),
      deribit: await collect(openReplay({ ...DERIBIT, files: [deribitFile], speed: 'max', replayPath: 'websocket', log: memoryLog() }))
    }
    for (const msgs of Object.values(single)) assert.deepEqual(msgs.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    assert.equal(single.binance.filter((m) => m.type === 'trade').length, expected.length)
    assert.deepEqual(single.deribit.slice(0, -1).map((m) => m.type), ['derivative_ticker', 'trade', 'trade', 'derivative_ticker', 'trade', 'trade'])

    const log = memoryLog()
    const source = openSource({ source: 'replay', streams: [{ ...BINANCE, files: [binanceFile] }, { ...DERIBIT, files: [deribitFile] }], speed: 'max', replayPath: 'websocket', log })
    assert.deepEqual(source.dataTypes, ['trade', 'book_snapshot', 'derivative_ticker'])
    const merged = await collect(source)
    assert.deepEqual(merged.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    const data = merged.slice(0, -1)
    for (const exchange of ['binance', 'deribit']) {
      assert.deepEqual(data.filter((m) => m.exchange === exchange).map(content), single[exchange].slice(0, -1).map(content), `${exchange}: the single-exchange replay's messages`)
    }
    assert.equal(data.length, single.binance.length + single.deribit.length - 2)

    // exchange-time order: every message is the next one of its exchange, and no other exchange had an
    // earlier one waiting (at equal times Binance, listed first, goes first)
    const all = [...single.binance, ...single.deribit].filter((m) => m.type !== 'end')
    assert.ok(all.every((m) => toUs(m.timestamp) !== toUs(m.localTimestamp)), 'every message has its exchange time')
    const next = { binance: 0, deribit: 0 }
    const rest = { binance: single.binance.slice(0, -1), deribit: single.deribit.slice(0, -1) }
    data.forEach((m, k) => {
      const other = m.exchange === 'binance' ? 'deribit' : 'binance'
      assert.deepEqual(content(m), content(rest[m.exchange][next[m.exchange]]), `#${k}`)
      next[m.exchange]++
      const waiting = rest[other][next[other]]
      if (waiting === undefined) return
      const t = toUs(m.timestamp)
      const w = toUs(waiting.timestamp)
      assert.ok(m.exchange === 'binance' ? t <= w : t < w, `#${k}: ${m.exchange} ${m.type} at ${t} went before ${other} ${waiting.type} at ${w}`)
    })
    const deribitAt = data.map((m, k) => [m, k]).filter(([m]) => m.exchange === 'deribit').map(([, k]) => k)
    assert.equal(deribitAt[0], 0, 'the ticker before the Binance slice comes first')
    const binanceFirst = data.findIndex((m) => m.exchange === 'binance' && m.type === 'trade')
    const deribitFirst = data.findIndex((m) => m.exchange === 'deribit' && m.type === 'trade')
    assert.equal(toUs(data[binanceFirst].timestamp), toUs(data[deribitFirst].timestamp))
    assert.ok(binanceFirst < deribitFirst, 'the first Binance trade goes before the Deribit trade at the same time')
    assert.ok(deribitAt[3] > 2 && deribitAt[4] < data.length - 1, 'Deribit messages in the middle of the Binance ones')
    assert.equal(deribitAt.at(-1), data.length - 1, 'the trade after the Binance slice comes last')

    // through the wire: the same rows per exchange and type
    const frames = await throughWire(merged, { streams: [BINANCE, DERIBIT] })
    const alone = {
      binance: await throughWire(single.binance, BINANCE),
      deribit: await throughWire(single.deribit, DERIBIT)
    }
    for (const [exchange, type] of [['binance', 'trade'], ['binance', 'book_snapshot'], ['deribit', 'trade'], ['deribit', 'derivative_ticker']]) {
      const want = rowsOf(alone[exchange], type, exchange)
      assert.ok(want.length > 0, `${exchange} ${type}`)
      assert.deepEqual(rowsOf(frames, type, exchange), want, `${exchange} ${type} rows`)
    }
    assert.equal(rowsOfType(frames, 'trade').length, expected.length + 4)

    // the ledger: per type totals across the exchanges
    const counts = source.ledgerCounts()
    const b = single.binance
    assert.deepEqual(counts.normalized, {
      trade: expected.length + 4,
      book_snapshot: b.filter((m) => m.type === 'book_snapshot').length,
      derivative_ticker: 2
    })
    assert.equal(counts.raw.sent, counts.raw.received)
    assert.equal(counts.raw.read, 4000 + 6)
    assert.equal(counts.raw.sent, source.stats.exchanges.binance.server.sent + source.stats.exchanges.deribit.server.sent)
    assert.ok(log.lines.some((l) => l.startsWith('binance: replay: 1 file(s)')) && log.lines.some((l) => l.startsWith('deribit: replay: 1 file(s)')), log.lines.join('\n'))
  })
})
