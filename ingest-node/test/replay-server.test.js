// The replay server on its own, with raw `ws` clients: a client that stops reading is detected (no pong
// in time, or a send buffer that does not drain) and its connection terminated, and the next client
// resumes where the replay stood; a REST depth snapshot the recording has further on is answered once
// the replay reaches it.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { WebSocket } from 'ws'
import { startReplayServer } from '../src/replay/server.js'
import { readRecording } from '../src/replay/recording.js'
import { SPOT_0808, REPO_ROOT, tmpDir, headLines, writeGz } from './helpers.js'

const SAMPLE = `${REPO_ROOT}/data/sample/binance-spot-btcusdt-trades.gz`

/** A log that keeps when each line was written. */
function timedLog () {
  /** @type {{at: number, line: string}[]} */
  const lines = []
  const log = (line) => { lines.push({ at: performance.now(), line }) }
  log.lines = lines
  return log
}

/** @param {() => boolean} cond @param {number} ms */
async function until (cond, ms) {
  const end = performance.now() + ms
  while (!cond()) {
    if (performance.now() > end) return false
    await sleep(10)
  }
  return true
}

/**
 * A raw client subscribed to `streams`; `frames` collects the recorded frames (those with a stream).
 * @param {string} url @param {string[]} streams
 */
async function subscribe (url, streams) {
  const ws = new WebSocket(url)
  /** @type {any[]} */
  const frames = []
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString())
    if (m.stream !== undefined) frames.push(m)
  })
  const closed = once(ws, 'close')
  await once(ws, 'open')
  ws.send(JSON.stringify({ method: 'SUBSCRIBE', params: streams, id: 1 }))
  return { ws, frames, closed }
}

/** Trade ids of the @trade lines of a recording, parsed by the test. @param {string[]} lines */
const tradeIds = (lines) => lines.filter((l) => l.includes('@trade"')).map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)).data.t)

describe('replay server', () => {
  test('paced: a client that stops reading gets no pong through, is terminated within the timeout, and the next client resumes at the cursor', { timeout: 30000 }, async () => {
    const ids = tradeIds(await headLines(SAMPLE, 1e6))
    const stallTimeoutMs = 800
    const pingIntervalMs = 200
    const log = timedLog()
    const server = await startReplayServer({ exchange: 'binance', recording: readRecording([SAMPLE]), speed: 50, stallTimeoutMs, pingIntervalMs, log })
    try {
      const a = await subscribe(server.url, ['btcusdt@trade'])
      assert.ok(await until(() => a.frames.length >= 100, 10000), 'frames flow')
      a.ws.pause() // stops reading its socket, as ws does when the consumer of its stream went away
      const pausedAt = performance.now()
      assert.ok(await until(() => server.stats.stalls > 0, stallTimeoutMs + 3000), 'the stall is detected')
      const stall = log.lines.find((l) => /stopped reading/.test(l.line))
      assert.match(stall.line, /no pong to a ping within 800 ms/)
      assert.ok(stall.at - pausedAt <= stallTimeoutMs + pingIntervalMs + 300, `detected ${Math.round(stall.at - pausedAt)} ms after the pause`)
      const sentAtStall = server.stats.sent
      a.ws.resume()
      const [code] = await a.closed
      assert.equal(code, 1006, 'terminated, no close handshake')
      assert.equal(server.stats.stalls, 1)
      const received = a.frames.map((m) => m.data.t)
      assert.deepEqual(received, ids.slice(0, received.length), 'the first client got a prefix, in order')
      const lost = sentAtStall - received.length
      assert.ok(lost >= 0 && lost <= server.stats.sentUnacknowledged, `lost ${lost} <= unacknowledged ${server.stats.sentUnacknowledged}`)

      const b = await subscribe(server.url, ['btcusdt@trade'])
      await b.closed // the server closes after the last frame
      assert.deepEqual(b.frames.map((m) => m.data.t), ids.slice(sentAtStall), 'the next client resumed at the cursor, to the end')
      assert.equal(server.stats.sent, ids.length)
      assert.equal(server.stats.stalls, 1)
    } finally {
      await server.close()
    }
  })

  test('hold: nothing recorded goes out while held, the client goes on answering pings (no stall), then the rest', { timeout: 30000 }, async () => {
    const ids = tradeIds(await headLines(SAMPLE, 1e6))
    const server = await startReplayServer({ exchange: 'binance', recording: readRecording([SAMPLE]), speed: 'max', stallTimeoutMs: 300, pingIntervalMs: 50 })
    try {
      server.hold(true)
      const a = await subscribe(server.url, ['btcusdt@trade'])
      await sleep(800) // well past the stall timeout
      assert.equal(a.frames.length, 0, 'held from the start')
      assert.equal(server.stats.stalls, 0)
      server.hold(false)
      assert.ok(await until(() => a.frames.length >= 200, 10000), 'frames flow once released')
      server.hold(true)
      await sleep(100) // what was on its way arrives
      const atHold = a.frames.length
      await sleep(500)
      assert.equal(a.frames.length, atHold, 'nothing more while held')
      assert.ok(atHold < ids.length)
      server.hold(false)
      await a.closed
      assert.deepEqual(a.frames.map((f) => f.data.t), ids, 'every trade, once, in order')
      assert.equal(server.stats.holds, 2)
      assert.equal(server.stats.stalls, 0)
    } finally {
      await server.close()
    }
  })

  test('max speed: a send buffer that does not drain for the timeout means a stalled client', { timeout: 30000 }, async () => {
    const stallTimeoutMs = 800
    const log = timedLog()
    const server = await startReplayServer({
      exchange: 'binance', recording: readRecording([SPOT_0808]), speed: 'max', stallTimeoutMs, pingIntervalMs: 60000, maxBufferedBytes: 256 * 1024, log
    })
    try {
      const a = await subscribe(server.url, ['btcusdt@depth@100ms', 'btcusdt@trade', 'btcusdt@bookTicker'])
      a.ws.pause()
      // the kernel's socket buffers take a few MB first; then the server's own buffer fills and it waits
      assert.ok(await until(() => server.stats.backpressureWaits > 0, 10000), 'the send buffer fills')
      const fullAt = performance.now()
      assert.ok(await until(() => server.stats.stalls > 0, stallTimeoutMs + 3000), 'the stall is detected')
      const stall = log.lines.find((l) => /stopped reading/.test(l.line))
      assert.match(stall.line, /send buffer did not drain for 800 ms/)
      assert.ok(stall.at - fullAt <= stallTimeoutMs + 500, `detected ${Math.round(stall.at - fullAt)} ms after the buffer filled`)
      a.ws.resume()
      const [code] = await a.closed
      assert.equal(code, 1006)
      assert.ok(server.stats.sent - a.frames.length <= server.stats.sentUnacknowledged)
      assert.equal(server.finished, false, 'the replay waits for the next client')
    } finally {
      await server.close()
    }
  })

  test('REST depth: a snapshot further on in the recording is answered when the replay reaches it; one it does not have is 404 at once', { timeout: 30000 }, async () => {
    // 0808's REST snapshot (line 8) moved to line 301 (~2.3 s of recording after the start)
    const lines = await headLines(SPOT_0808, 400)
    const at = lines.findIndex((l) => l.includes('"lastUpdateId"'))
    const snapshot = lines[at]
    const moved = [...lines.slice(0, at), ...lines.slice(at + 1, 301), snapshot, ...lines.slice(301)]
    assert.equal(moved.indexOf(snapshot), 300)
    const file = writeGz(tmpDir(), 'late-snapshot.gz', moved)
    const tsMs = (l) => Number(l.slice(0, l.indexOf(' ')).slice(0, -6))
    const dueMs = tsMs(moved[299]) - tsMs(moved[0]) // the line before it: the moved line is older, so it goes right after
    const lastUpdateId = JSON.parse(snapshot.slice(snapshot.indexOf(' ') + 1)).lastUpdateId
    const server = await startReplayServer({
      exchange: 'binance', recording: readRecording([file]), speed: 1, restWaitMs: 8000, inventory: { snapshots: { btcusdt: `${file}:301` } }
    })
    try {
      const a = await subscribe(server.url, ['btcusdt@depth@100ms'])
      assert.ok(await until(() => a.frames.length > 0, 5000))
      const t0 = performance.now()
      const other = await fetch(`${server.restUrl}/depth?symbol=ETHUSDT&limit=1000`)
      assert.equal(other.status, 404)
      assert.match(await other.text(), /no depth snapshot of ethusdt/)
      assert.ok(performance.now() - t0 < 500, 'not in the recording: answered at once')
      const res = await fetch(`${server.restUrl}/depth?symbol=BTCUSDT&limit=1000`)
      const waited = performance.now() - t0
      assert.equal(res.status, 200)
      assert.equal((await res.json()).lastUpdateId, lastUpdateId)
      assert.ok(waited >= dueMs - 400, `answered after ${Math.round(waited)} ms, the snapshot is due ${dueMs} ms into the replay`)
      assert.equal(server.stats.restWaits, 1)
      assert.equal(server.stats.restNotFound, 1)
    } finally {
      await server.close()
    }
  })

  test('REST depth: a snapshot not reached within restWaitMs is a 404 saying so', { timeout: 30000 }, async () => {
    const lines = await headLines(SPOT_0808, 400)
    const at = lines.findIndex((l) => l.includes('"lastUpdateId"'))
    const moved = [...lines.slice(0, at), ...lines.slice(at + 1), lines[at]]
    const file = writeGz(tmpDir(), 'last-snapshot.gz', moved)
    const server = await startReplayServer({
      exchange: 'binance', recording: readRecording([file]), speed: 1, restWaitMs: 300, inventory: { snapshots: { btcusdt: `${file}:400` } }
    })
    try {
      const a = await subscribe(server.url, ['btcusdt@depth@100ms'])
      assert.ok(await until(() => a.frames.length > 0, 5000))
      const t0 = performance.now()
      const res = await fetch(`${server.restUrl}/depth?symbol=BTCUSDT&limit=1000`)
      const waited = performance.now() - t0
      assert.equal(res.status, 404)
      assert.match(await res.text(), /depth snapshot of btcusdt \(.*last-snapshot\.gz:400\) was not reached in time/)
      assert.ok(waited >= 290 && waited < 2000, `waited ${Math.round(waited)} ms`)
    } finally {
      await server.close()
    }
  })
})
