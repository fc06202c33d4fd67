// tardis-machine source against a fake tardis-machine on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { WebSocketServer } from 'ws'
import { openTardisMachine } from '../src/sources/tardis-machine.js'
import { toUs } from '../src/convert.js'
import { collect } from './helpers.js'

test('tardis-machine: ISO µs timestamps become tardis Dates; close ends the source', { timeout: 10000 }, async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => wss.once('listening', resolve))
  let requested = null
  wss.on('connection', (ws, req) => {
    requested = new URL(req.url, 'http://x')
    ws.send(JSON.stringify({ type: 'trade', symbol: 'XBTUSD', exchange: 'bitmex', id: 'a1', price: 32000.5, amount: 100, side: 'buy', timestamp: '2021-07-22T00:00:00.1234560Z', localTimestamp: '2021-07-22T00:00:00.125001Z' }))
    ws.send(JSON.stringify({ type: 'disconnect', exchange: 'bitmex', localTimestamp: '2021-07-22T00:00:01.000000Z' }))
    ws.send('not json')
    ws.close(1000)
  })
  const source = openTardisMachine({ url: `ws://127.0.0.1:${wss.address().port}`, exchange: 'bitmex', symbols: ['XBTUSD'], dataTypes: ['trade', 'book_snapshot'], bookDepth: 25, bookIntervalMs: 100 })
  const msgs = await collect(source)
  wss.close()
  assert.equal(requested.pathname, '/ws-stream-normalized')
  assert.deepEqual(JSON.parse(requested.searchParams.get('options')), { exchange: 'bitmex', symbols: ['XBTUSD'], dataTypes: ['trade', 'book_snapshot_25_100ms'], withDisconnectMessages: true })
  assert.deepEqual(msgs.map((m) => m.type), ['trade', 'disconnect', 'end'])
  assert.equal(toUs(msgs[0].timestamp), Date.UTC(2021, 6, 22) * 1000 + 123456)
  assert.equal(toUs(msgs[0].localTimestamp), Date.UTC(2021, 6, 22) * 1000 + 125001)
  assert.deepEqual(msgs[2], { type: 'end', reason: 'source_closed', error: null })
  assert.equal(source.stats.bad, 1)
})
