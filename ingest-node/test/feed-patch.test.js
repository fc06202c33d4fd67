// The one patch of tardis-dev's feed (src/sources/feed-patch.js), on the live source: a failed REST depth
// snapshot closes the connection, so tardis-dev's reconnect runs and a disconnect comes out (unpatched,
// tardis-dev 13.35.3 leaves the socket open and paused: every later frame is lost without a word).
// Its own file: a tardis-dev feed of another test that is still retrying would connect to this server.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { openTardisRealtime } from '../src/sources/tardis-realtime.js'
import { startReplayServer } from '../src/replay/server.js'
import { readRecording } from '../src/replay/recording.js'
import { memoryLog } from '../src/log.js'
import { newFeedCounters, patchConnection } from '../src/sources/feed-patch.js'
import { headLines, writeGz, tmpDir, expectedTrades, SHARED_DATA } from './helpers.js'

const SPOT_0809 = `${SHARED_DATA}/binance-ws/spot_btcusdt_20240809.gz`

describe('feed patch', () => {
  test('a failed REST depth snapshot closes the connection: a disconnect, then tardis-dev reconnects and the trades go on', { timeout: 30000 }, async () => {
    // 0809 has depth updates but no depth snapshot: the server answers tardis-dev's GET /depth with 404.
    // Its first 3000 lines span 11.5 s of recording: ~5.8 s at speed 2, longer than connect + 1 s + the 404.
    const lines = await headLines(SPOT_0809, 3000)
    assert.ok(!lines.some((l) => l.includes('"lastUpdateId"')), 'no depth snapshot in the slice')
    const ids = expectedTrades(lines).map((t) => t.id)
    const file = writeGz(tmpDir(), 'no-snapshot.gz', lines)
    const log = memoryLog()
    const server = await startReplayServer({ exchange: 'binance', recording: readRecording([file]), speed: 2, log })
    process.env.WSS_URL_BINANCE = server.url
    const source = openTardisRealtime({
      exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade', 'book_snapshot'], restUrl: server.restUrl, timeoutIntervalMS: 0, log
    })
    const msgs = []
    try {
      for await (const m of source) {
        msgs.push(m)
        const d = msgs.findIndex((x) => x.type === 'disconnect')
        if (d !== -1 && msgs.slice(d).some((x) => x.type === 'trade')) break
        if (m.type === 'end') break
      }
    } finally {
      await server.close()
    }
    const d = msgs.findIndex((x) => x.type === 'disconnect')
    assert.ok(d > 0, `a disconnect after some data (${msgs.map((m) => m.type).join(',').slice(0, 200)})`)
    assert.equal(msgs[d].exchange, 'binance')
    assert.deepEqual(msgs[d].symbols, ['btcusdt'])
    assert.equal(source.feed.snapshotFailures, 1)
    assert.match(source.feed.lastSnapshotError, /404/)
    assert.equal(server.stats.restNotFound, 1)
    assert.equal(server.stats.connections, 2, 'tardis-dev reconnected')
    const got = msgs.filter((m) => m.type === 'trade')
    const before = got.slice(0, msgs.slice(0, d).filter((m) => m.type === 'trade').length)
    const after = got.slice(before.length)
    assert.deepEqual(before.map((m) => m.id), ids.slice(0, before.length), 'the trades before the drop, in order')
    assert.ok(ids.indexOf(after[0].id) >= before.length, 'the reconnect resumes at or after where the drop was')
    const counts = source.ledgerCounts()
    assert.equal(counts.normalized.trade, got.length)
    assert.equal(counts.normalized.disconnect, 1)
    assert.ok(counts.raw.received >= got.length, 'every trade came from a raw message counted by the feed patch')
  })
})

test('a REST poller stops once the stream is released: the next poll tardis-dev scheduled is cleared', async () => {
  const counters = newFeedCounters()
  let polled = 0
  const poller = {
    _tid: undefined,
    async poolDataToStream (out) { polled++; out.push({ polled }) }
  }
  patchConnection(poller, counters)
  const out = { items: [], push (x) { this.items.push(x) } }
  await poller.poolDataToStream(out)
  assert.equal(polled, 1)
  counters.released = true
  const fired = []
  await poller.poolDataToStream(out)
  poller._tid = setTimeout(() => fired.push('polled again'), 20) // what tardis-dev does when it returns
  await new Promise((resolve) => setTimeout(resolve, 60))
  assert.equal(polled, 1)
  assert.deepEqual(fired, [])
})
