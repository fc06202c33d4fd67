// tardis-realtime must fail fast with a clear error when the exchange cannot be reached (no network
// in tests: WSS_URL_BINANCE points at a closed local port).
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { openTardisRealtime } from '../src/sources/tardis-realtime.js'
import { memoryLog } from '../src/log.js'
import { closedPort, collect } from './helpers.js'

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
