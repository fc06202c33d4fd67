// tardis-realtime must fail fast with a clear error when the exchange cannot be reached (no network
// in tests: WSS_URL_BINANCE points at a closed local port). Several exchanges: replay servers stand in
// for them.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { openTardisRealtime } from '../src/sources/tardis-realtime.js'
import { openSource } from '../src/sources/index.js'
import { startReplayServer } from '../src/replay/server.js'
import { readRecording } from '../src/replay/recording.js'
import { memoryLog } from '../src/log.js'
import { SPOT_0808, closedPort, collect, headLines, writeGz, writeCryptofeed, expectedTrades, tmpDir } from './helpers.js'

describe('tardis-realtime', () => {
  test('unreachable URL: one end message with reason error naming the URL and the cause', { timeout: 8000 }, async () => {
    const port = await closedPort()
    const url = `ws://127.0.0.1:${port}/stream`
    process.env.WSS_URL_BINANCE = url
    const source = openTardisRealtime({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'], log: memoryLog() })
    const msgs = await collect(source)
    assert.equal(msgs.length, 1)
    const [end] = msgs
    assert.equal(end.type, 'end')
    assert.equal(end.reason, 'error')
    assert.ok(end.error.includes(url), end.error)
    assert.match(end.error, /ECONNREFUSED/)
    assert.equal(source.stats.connectionErrors, 1)
    assert.deepEqual(source.ledgerCounts(), { raw: { received: 0 }, normalized: {}, internal: {} }, 'nothing received, the end is not counted')
  })

  test('bad options fail at once', () => {
    assert.throws(() => openTardisRealtime({ exchange: 'binance', symbols: [] }), /at least one symbol/)
    assert.throws(() => openTardisRealtime({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['quotes'] }), /unknown data type "quotes"/)
  })
})

describe('tardis-realtime: several exchanges', () => {
  test('merged as the messages come; each exchange\'s own order kept; stopping stops both', { timeout: 30000 }, async () => {
    const lines = await headLines(SPOT_0808, 1500)
    const trades = expectedTrades(lines)
    const deribitTrades = [1, 2, 3].map((k) => ({
      jsonrpc: '2.0', method: 'subscription', params: { channel: 'trades.BTC-PERPETUAL.raw', data: [{ trade_seq: k, trade_id: `d${k}`, timestamp: 1626993724000 + k, tick_direction: 0, price: 32000 + k, mark_price: 32000, instrument_name: 'BTC-PERPETUAL', index_price: 32000, direction: 'buy', amount: 10 * k }] }
    }))
    const deribitFile = writeCryptofeed(tmpDir(), 'deribit.txt', 'wss://www.deribit.com/ws/api/v2', deribitTrades)
    // stand-in exchanges: replay servers, found by tardis-dev's real-time client through WSS_URL_<EXCHANGE>
    const servers = [
      await startReplayServer({ exchange: 'binance', recording: readRecording([writeGz(tmpDir(), 'slice.gz', lines)]), speed: 'max' }),
      await startReplayServer({ exchange: 'deribit', recording: readRecording([deribitFile]), speed: 'max' })
    ]
    process.env.WSS_URL_BINANCE = servers[0].url
    process.env.WSS_URL_DERIBIT = servers[1].url
    try {
      const source = openSource({
        source: 'tardis-realtime',
        streams: [{ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'] }, { exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['trade'] }],
        log: memoryLog()
      })
      const got = []
      for await (const m of source) {
        if (m.type === 'trade') got.push(m)
        if (got.length === trades.length + 3) break
      }
      assert.deepEqual(got.filter((m) => m.exchange === 'binance').map((m) => m.id), trades.map((t) => t.id))
      assert.deepEqual(got.filter((m) => m.exchange === 'deribit').map((m) => m.id), ['d1', 'd2', 'd3'])
      assert.equal(source.stats.merge.order, 'arrival')
      assert.deepEqual(source.stats.merge.yielded.map((n) => n > 0), [true, true])
    } finally {
      for (const s of servers) await s.close()
    }
  })

  test('an exchange that cannot be reached ends the session, named', { timeout: 8000 }, async () => {
    const port = await closedPort()
    process.env.WSS_URL_BINANCE = `ws://127.0.0.1:${await closedPort()}/stream`
    process.env.WSS_URL_DERIBIT = `ws://127.0.0.1:${port}/ws/api/v2`
    const source = openSource({
      source: 'tardis-realtime',
      streams: [{ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'] }, { exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['trade'] }],
      log: memoryLog()
    })
    const msgs = await collect(source)
    assert.equal(msgs.length, 1)
    assert.equal(msgs[0].reason, 'error')
    assert.match(msgs[0].error, /^(binance|deribit): tardis-realtime: cannot stream (binance|deribit) from ws:\/\/127\.0\.0\.1:\d+\/.*ECONNREFUSED/)
  })
})
