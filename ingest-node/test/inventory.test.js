// The recording inventory taken before a Binance replay with book data: which symbols have a REST depth
// snapshot (scanRecording of exchanges/binance.js), through the synchronous worker (inventory.js).
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { gunzipSync } from 'node:zlib'
import { readFileSync } from 'node:fs'
import { scanRecording, scanLine } from '../src/replay/exchanges/binance.js'
import { scanRecordingSync, needsScan, numberedLines } from '../src/replay/inventory.js'
import { SPOT_0808, SHARED_DATA, REPO_ROOT, headLines } from './helpers.js'

const SAMPLE = `${REPO_ROOT}/data/sample/binance-spot-btcusdt-trades.gz`
const SPOT_0809 = `${SHARED_DATA}/binance-ws/spot_btcusdt_20240809.gz`
const BOOK = ['trade', 'book_snapshot']

/** Lines as scanRecording reads them, counting how many were pulled. @param {string[]} texts */
function feed (texts) {
  const it = {
    pulled: 0,
    async * [Symbol.asyncIterator] () {
      for (let i = 0; i < texts.length; i++) {
        it.pulled++
        yield { file: 'f.gz', line: i + 1, text: texts[i] }
      }
    }
  }
  return it
}

const depth = (s) => `1 {"stream":"${s}@depth@100ms","data":{"e":"depthUpdate","s":"${s.toUpperCase()}","U":1,"u":2,"b":[],"a":[]}}`
const trade = (s) => `1 {"stream":"${s}@trade","data":{"e":"trade","s":"${s.toUpperCase()}","t":1,"p":"1","q":"1","T":1,"m":true}}`
const snap = '1 {"lastUpdateId":5,"bids":[["1","1"]],"asks":[["2","1"]]}'

describe('recording inventory (Binance depth snapshots)', () => {
  test('an unwrapped snapshot belongs to the symbol of the depth update before it; a recorded @depthSnapshot line to its own', async () => {
    const lines = feed([depth('ethusdt'), snap, `1 {"stream":"solusdt@depthSnapshot","generated":true,"data":{"lastUpdateId":7,"bids":[],"asks":[]}}`,
      trade('btcusdt'), depth('btcusdt'), trade('btcusdt'), snap])
    const r = await scanRecording(lines, { symbols: ['BTCUSDT', 'ethusdt', 'solusdt'], dataTypes: BOOK })
    assert.deepEqual(r.inventory.snapshots, { ethusdt: 'f.gz:2', solusdt: 'f.gz:3', btcusdt: 'f.gz:7' })
    assert.deepEqual(r.unavailable, [])
  })

  test('stops reading once every requested symbol has one; a missing one makes book_snapshot unavailable', async () => {
    const lines = feed([depth('btcusdt'), snap, ...Array(1000).fill(trade('btcusdt'))])
    const r = await scanRecording(lines, { symbols: ['btcusdt'], dataTypes: BOOK })
    assert.deepEqual(r, { unavailable: [], inventory: { snapshots: { btcusdt: 'f.gz:2' } } })
    assert.equal(lines.pulled, 2)
    const r2 = await scanRecording(feed([depth('ethusdt'), snap, trade('btcusdt')]), { symbols: ['btcusdt', 'ethusdt'], dataTypes: BOOK })
    assert.deepEqual(r2.unavailable, [{ type: 'book_snapshot', reason: 'no depth snapshot of btcusdt' }])
  })

  test('nothing to scan without book data', async () => {
    const lines = feed([trade('btcusdt')])
    assert.deepEqual(await scanRecording(lines, { symbols: ['btcusdt'], dataTypes: ['trade'] }), { unavailable: [], inventory: { snapshots: {} } })
    assert.equal(lines.pulled, 0)
    assert.equal(needsScan('binance', ['trade']), false)
    assert.equal(needsScan('binance', BOOK), true)
    assert.equal(needsScan('binance-futures', BOOK), true)
    assert.equal(needsScan('bitmex', BOOK), false, 'BitMEX sends its book partial over the WebSocket')
  })

  test('only the lines the scan looks at are handed to it, with their own line numbers', async () => {
    const texts = gunzipSync(readFileSync(SPOT_0808)).toString('utf8').split('\n')
    const expected = texts.flatMap((text, i) => (text.includes('@depth') || text.includes('"lastUpdateId"')) ? [`${i + 1} ${text}`] : [])
    assert.ok(expected.length > 0 && expected.length < texts.length / 2, `${expected.length} of ${texts.length}`)
    const got = []
    for await (const { file, line, text } of numberedLines([SPOT_0808], scanLine)) {
      assert.equal(file, SPOT_0808)
      got.push(`${line} ${text}`)
    }
    assert.deepEqual(got, expected)
  })

  test('the shared recordings, synchronously (worker)', async () => {
    const firstSnapshot = (await headLines(SPOT_0808, 100)).findIndex((l) => l.includes('"lastUpdateId"')) + 1
    assert.deepEqual(scanRecordingSync('binance', [SPOT_0808, SPOT_0809], { symbols: ['btcusdt'], dataTypes: BOOK }),
      { unavailable: [], inventory: { snapshots: { btcusdt: `${SPOT_0808}:${firstSnapshot}` } } })
    for (const f of [SAMPLE, SPOT_0809]) {
      assert.deepEqual(scanRecordingSync('binance', [f], { symbols: ['btcusdt'], dataTypes: BOOK }).unavailable,
        [{ type: 'book_snapshot', reason: 'no depth snapshot of btcusdt' }], f)
    }
    assert.throws(() => scanRecordingSync('binance', ['/nope/x.gz'], { symbols: ['btcusdt'], dataTypes: BOOK }), /cannot read \/nope\/x\.gz: ENOENT/)
  })
})
