// Which data types tardis-dev can stream for an exchange, and what happens to the others: logged once,
// not subscribed, the rest streams; nothing available -> a clear error. Plus the liquidation source
// lists (from trades vs native feed), checked against tardis-dev's own mappers.
import { test, describe, before } from 'node:test'
import assert from 'node:assert/strict'
import { EXCHANGES, normalizeLiquidations, normalizeTrades } from 'tardis-dev'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  DATA_TYPES, checkDataTypes, unavailableReason, LIQUIDATIONS_FROM_TRADES, NATIVE_LIQUIDATION_FEEDS,
  EXCHANGES_JSON_PATH, readLiquidationLists
} from '../src/sources/availability.js'
import { openReplay } from '../src/sources/replay.js'
import { openTardisRealtime } from '../src/sources/tardis-realtime.js'
import { memoryLog } from '../src/log.js'
import { SPOT_0808, tmpDir, headLines, writeGz, expectedTrades, collect } from './helpers.js'

/** @param {string} exchange @param {Function} normalizer */
function channelsOf (exchange, normalizer) {
  try {
    return normalizer(exchange, new Date()).getFilters(['X']).map((f) => f.channel)
  } catch {
    return null // not supported
  }
}

describe('data type availability', () => {
  let slice
  let trades
  before(async () => {
    const lines = await headLines(SPOT_0808, 1500)
    slice = writeGz(tmpDir(), 'spot_slice.gz', lines)
    trades = expectedTrades(lines)
  })

  test('binance spot: trade and book_snapshot yes; derivative_ticker, liquidation, option_summary no, with tardis-dev\'s reason', () => {
    const { available, unavailable } = checkDataTypes('binance', DATA_TYPES)
    assert.deepEqual(available, ['trade', 'book_snapshot'])
    assert.deepEqual(unavailable.map((u) => u.type), ['derivative_ticker', 'liquidation', 'option_summary'])
    assert.match(unavailable[1].reason, /normalizeLiquidations: binance not supported/)
    assert.deepEqual(checkDataTypes('bitmex', DATA_TYPES).available, ['trade', 'book_snapshot', 'derivative_ticker', 'liquidation'])
    assert.deepEqual(checkDataTypes('deribit', DATA_TYPES).available, DATA_TYPES)
    assert.deepEqual(checkDataTypes('coinbase', DATA_TYPES).available, ['trade', 'book_snapshot'])
    assert.match(unavailableReason('no-such-exchange', 'trade'), /no real-time feed/)
    assert.throws(() => checkDataTypes('binance', ['quotes']), /unknown data type "quotes"/)
  })

  test('replay binance spot with trade + liquidation: liquidation logged once as not available, every trade still streams', { timeout: 30000 }, async () => {
    const log = memoryLog()
    const source = openReplay({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade', 'liquidation'], files: [slice], speed: 'max', replayPath: 'websocket', log })
    assert.deepEqual(source.dataTypes, ['trade'], 'what the start frame lists')
    const msgs = await collect(source)
    assert.deepEqual(msgs.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    assert.equal(msgs.filter((m) => m.type === 'trade').length, trades.length)
    assert.equal(msgs.filter((m) => m.type === 'liquidation').length, 0)
    const notes = log.lines.filter((l) => l.includes('not available'))
    assert.deepEqual(notes, ['liquidation not available for binance: tardis-dev has no liquidation mapper for it (normalizeLiquidations: binance not supported)'])
    assert.equal(source.stats.server.clientProblems, 0)
  })

  test('nothing available: one end with a clear error, no connection attempted', async () => {
    const log = memoryLog()
    const source = openReplay({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['liquidation', 'option_summary'], files: [slice], log })
    assert.deepEqual(source.dataTypes, [])
    const msgs = await collect(source)
    assert.equal(msgs.length, 1)
    assert.equal(msgs[0].reason, 'error')
    assert.match(msgs[0].error, /none of the requested data types is available for binance: liquidation: .*; option_summary: /)
    assert.equal(source.stats.server, null, 'the replay server was never started')
    assert.equal(log.lines.filter((l) => l.includes('not available')).length, 2)

    const live = openTardisRealtime({ exchange: 'coinbase', symbols: ['BTC-USD'], dataTypes: ['liquidation'], log: memoryLog() })
    assert.deepEqual(live.dataTypes, [])
    const [end] = await collect(live)
    assert.match(end.error, /tardis-realtime: none of the requested data types is available for coinbase: liquidation: .*normalizeLiquidations: coinbase not supported/)
  })

  test('LIQUIDATIONS_FROM_TRADES / NATIVE_LIQUIDATION_FEEDS agree with tardis-dev\'s mappers', () => {
    const fromTrades = []
    const native = []
    for (const exchange of EXCHANGES) {
      const liq = channelsOf(exchange, normalizeLiquidations)
      if (liq === null) continue
      const trade = channelsOf(exchange, normalizeTrades) ?? []
      // derived from trades = the liquidation mapper subscribes nothing but the trades channel(s)
      if (liq.every((c) => trade.includes(c))) fromTrades.push(exchange)
      else native.push(exchange)
    }
    assert.deepEqual(fromTrades.sort(), [...LIQUIDATIONS_FROM_TRADES].sort())
    assert.deepEqual(native.sort(), [...NATIVE_LIQUIDATION_FEEDS].sort())
  })

  test('both lists are read from proto/exchanges.json (the processor reads the same file), not copied into the code', () => {
    const json = JSON.parse(readFileSync(EXCHANGES_JSON_PATH, 'utf8'))
    assert.match(EXCHANGES_JSON_PATH, /\/proto\/exchanges\.json$/)
    assert.deepEqual(LIQUIDATIONS_FROM_TRADES, json.liquidations.from_trades)
    assert.deepEqual(NATIVE_LIQUIDATION_FEEDS, json.liquidations.native_feed)
    const other = join(tmpDir(), 'exchanges.json')
    writeFileSync(other, JSON.stringify({ liquidations: { from_trades: ['x-trades'], native_feed: ['y-feed', 'z-feed'] } }))
    assert.deepEqual(readLiquidationLists(other), { fromTrades: ['x-trades'], nativeFeed: ['y-feed', 'z-feed'] })
    writeFileSync(other, JSON.stringify({ liquidations: { from_trades: 'deribit', native_feed: [] } }))
    assert.throws(() => readLiquidationLists(other), /liquidations\.from_trades must be a list of exchange ids/)
    const code = readFileSync(new URL('../src/sources/availability.js', import.meta.url), 'utf8').replace(/^\s*\/\/.*$/gm, '')
    for (const exchange of ['cryptofacilities', 'dydx-v4', 'huobi-dm-swap', 'okex-futures', 'bitfinex-derivatives']) {
      assert.ok(!code.includes(`'${exchange}'`), `availability.js has its own '${exchange}'`)
    }
  })

  test('deribit: a trade with liquidation "T" is also a liquidation, on the taker\'s side; "M" flips to the maker\'s', () => {
    // https://docs.deribit.com/#trades-instrument_name-interval
    const message = {
      jsonrpc: '2.0',
      method: 'subscription',
      params: {
        channel: 'trades.BTC-PERPETUAL.100ms',
        data: [
          { trade_seq: 1, trade_id: '1', timestamp: 1626993724000, tick_direction: 0, price: 32150, mark_price: 32151, instrument_name: 'BTC-PERPETUAL', index_price: 32149, direction: 'sell', amount: 2500, liquidation: 'T' },
          { trade_seq: 2, trade_id: '2', timestamp: 1626993724001, tick_direction: 0, price: 32190, mark_price: 32151, instrument_name: 'BTC-PERPETUAL', index_price: 32149, direction: 'sell', amount: 700, liquidation: 'M' },
          { trade_seq: 3, trade_id: '3', timestamp: 1626993724002, tick_direction: 0, price: 32191, mark_price: 32151, instrument_name: 'BTC-PERPETUAL', index_price: 32149, direction: 'buy', amount: 10 }
        ]
      }
    }
    const now = new Date()
    const liqMapper = normalizeLiquidations('deribit', now)
    const tradeMapper = normalizeTrades('deribit', now)
    assert.ok(liqMapper.canHandle(message) && tradeMapper.canHandle(message), 'the same trades message feeds both')
    const liqs = [...liqMapper.map(message, now)]
    assert.deepEqual(liqs.map((l) => [l.type, l.id, l.price, l.amount, l.side]), [['liquidation', '1', 32150, 2500, 'sell'], ['liquidation', '2', 32190, 700, 'buy']])
    assert.equal([...tradeMapper.map(message, now)].length, 3, 'and every trade stays a trade')
    assert.ok(LIQUIDATIONS_FROM_TRADES.includes('deribit'))
    assert.ok(NATIVE_LIQUIDATION_FEEDS.includes('bitmex') && NATIVE_LIQUIDATION_FEEDS.includes('binance-futures'))
  })
})
