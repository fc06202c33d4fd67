// Local WebSocket server that plays a recording of raw exchange frames to tardis-dev's real-time
// client (pointed here through WSS_URL_<EXCHANGE>). One replay cursor is shared by successive
// connections: after a drop, the reconnecting client gets the frames that follow.
// It never keeps sending into a connection whose client stopped reading: a ping goes out every
// pingIntervalMs, and a connection whose pong does not come within stallTimeoutMs, or whose send buffer
// does not drain for stallTimeoutMs, is terminated and counted (stats.stalls, stats.sentUnacknowledged);
// the client's reconnect resumes the replay where it stood.
import { createServer } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { performance } from 'node:perf_hooks'
import { WebSocketServer, WebSocket } from 'ws'
import { protocolFor } from './exchanges/index.js'
import { silentLog } from '../log.js'

const REST_PREFIX = '/rest/'

class ClosedError extends Error {
  constructor () { super('replay server closed') }
}

/**
 * @typedef {object} ReplayServerOptions
 * @property {string} exchange tardis exchange id; picks the protocol module
 * @property {AsyncIterable<import('./recording.js').RecordedMessage>} recording
 * @property {number|'max'} [speed] 1 = real time from the recorded receive times, N = N times faster, 'max' = as fast as the socket drains
 * @property {number} [cutAfter] drop the connection once after this many frames (0 = never)
 * @property {number} [settleMs] wait after the first SUBSCRIBE before sending, so every subscribe of the connection arrives (default 50)
 * @property {number} [maxBufferedBytes] pause reading the recording while the socket has more than this queued (default 4 MiB)
 * @property {number} [stallTimeoutMs] a client whose pong (or send-buffer drain) is this late has stopped reading: its connection is terminated (default 5000)
 * @property {number} [pingIntervalMs] ping the client this often (default 1000)
 * @property {number} [restWaitMs] how long a REST answer the recording has further on waits for the replay to reach it (default 8000, under tardis-dev's 10 s timeout)
 * @property {any} [inventory] what the protocol's scanRecording found, for its createRecordingState
 * @property {import('../log.js').Log} [log]
 */

/**
 * @typedef {object} ReplayServer
 * @property {string} url ws://127.0.0.1:<port><path>
 * @property {string} restUrl http://127.0.0.1:<port>/rest: base URL for the exchange REST calls tardis-dev makes
 * @property {number} port
 * @property {boolean} finished true once the last frame went out (or the replay failed)
 * @property {Error|null} error why the replay failed, if it did
 * @property {Promise<void>} done resolves when finished
 * @property {Record<string, number>} stats
 * @property {(on: boolean) => void} hold true: send no recorded frame until hold(false) (the client goes on
 *   reading, and answering pings); the time held does not count in the pacing, as time without a client
 * @property {() => Promise<void>} close
 */

/**
 * @param {ReplayServerOptions} options
 * @returns {Promise<ReplayServer>}
 */
export async function startReplayServer ({
  exchange, recording, speed = 'max', cutAfter = 0, settleMs = 50, maxBufferedBytes = 4 * 1024 * 1024,
  stallTimeoutMs = 5000, pingIntervalMs = 1000, restWaitMs = 8000, inventory = null, log = silentLog
}) {
  if (speed !== 'max' && !(typeof speed === 'number' && speed > 0)) {
    throw new Error(`replay: speed must be 'max' or a positive number, got ${JSON.stringify(speed)}`)
  }
  if (!Number.isInteger(cutAfter) || cutAfter < 0) throw new Error(`replay: cutAfter must be a non-negative integer, got ${cutAfter}`)
  for (const [name, v] of Object.entries({ stallTimeoutMs, pingIntervalMs })) {
    if (!(typeof v === 'number' && v > 0)) throw new Error(`replay: ${name} must be a positive number of ms, got ${JSON.stringify(v)}`)
  }
  /** how often a connection is looked at for its next ping */
  const heartbeatMs = Math.max(10, Math.min(pingIntervalMs, stallTimeoutMs / 4))
  const protocol = protocolFor(exchange)
  const shared = protocol.createRecordingState(inventory)
  const stats = {
    connections: 0,
    /** recorded frames sent to clients */
    sent: 0,
    /** other frames sent to clients: greetings and answers to their requests */
    replies: 0,
    /** recorded messages not sent: stream not subscribed, or nothing for clients */
    skipped: 0,
    /** connections dropped on purpose (cutAfter) */
    cuts: 0,
    /** client requests that were malformed or unknown */
    clientProblems: 0,
    clientErrors: 0,
    /** times the socket was full and reading the recording paused */
    backpressureWaits: 0,
    /** REST calls of tardis-dev answered (exchangeInfo, depth snapshots, ...) and those answered 404 */
    restRequests: 0,
    restNotFound: 0,
    /** REST answers that waited for the replay to reach them in the recording */
    restWaits: 0,
    /** connections terminated because their client stopped reading */
    stalls: 0,
    /** times the replay was held (hold(true)): a merge of several exchanges had enough of this one queued */
    holds: 0,
    /** recorded frames sent to those connections after their last acknowledged ping (an upper bound of what they lost) */
    sentUnacknowledged: 0
  }

  /**
   * @typedef {object} Client
   * @property {WebSocket} ws
   * @property {any} session
   * @property {boolean} ready subscribed and settled: frames may go out
   * @property {any} timer settle timer
   * @property {any} heartbeat ping timer
   * @property {any} pongTimer the unanswered ping's deadline (stallTimeoutMs after it went out)
   * @property {number} sent recorded frames sent on this connection
   * @property {number|null} pingAt when the unanswered ping went out (performance.now()), null if none
   * @property {number} sentAtPing `sent` when that ping went out
   * @property {number} acked recorded frames acknowledged by a pong (sent before its ping)
   * @property {number} lastPingAt when the last ping went out (at connect: the connection's start)
   */
  /** @type {Client | null} */
  let client = null
  /** @type {(() => void)[]} */
  let wakers = []
  const wake = () => { const w = wakers; wakers = []; for (const f of w) f() }
  const state = { finished: false, closed: false, held: false, error: /** @type {Error|null} */ (null) }

  /**
   * The protocol's REST answer; a `pending` one (the recording has it further on) is asked again as the
   * replay goes on, for up to restWaitMs.
   * @param {string} endpoint @param {URLSearchParams} query
   */
  const restAnswer = async (endpoint, query) => {
    let r = protocol.rest(endpoint, query, shared)
    if (r.pending !== true) return r
    stats.restWaits++
    const deadline = performance.now() + restWaitMs
    while (r.pending === true && !state.finished && performance.now() < deadline) {
      await sleep(Math.min(20, Math.max(1, deadline - performance.now())))
      r = protocol.rest(endpoint, query, shared)
    }
    return r
  }

  const http = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1')
    if (u.pathname.startsWith(REST_PREFIX) && protocol.rest !== undefined) {
      const endpoint = u.pathname.slice(REST_PREFIX.length - 1)
      stats.restRequests++
      restAnswer(endpoint, u.searchParams).then((r) => {
        if (r.status !== 200) {
          stats.restNotFound++
          if (stats.restNotFound <= 5) log(`replay: REST ${u.pathname}${u.search} -> ${r.status} ${r.body}`)
        }
        res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers })
        res.end(r.body)
      }, (e) => {
        stats.restNotFound++
        log(`replay: REST ${u.pathname}${u.search} failed: ${e.message}`)
        res.writeHead(500, { 'content-type': 'text/plain' })
        res.end(`replay server: ${e.message}\n`)
      })
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end(`replay server: only WebSocket connections on ${protocol.path}\n`)
  })
  const wss = new WebSocketServer({ server: http, path: protocol.path, perMessageDeflate: false })
  wss.on('connection', (ws) => {
    stats.connections++
    if (state.finished) {
      ws.close(1000, 'replay finished')
      return
    }
    if (client !== null) {
      log('replay: a second client connected; closing the previous one')
      client.ws.close(1000, 'replaced by a new connection')
    }
    /** @type {Client} */
    const c = {
      ws, session: protocol.createSession(shared), ready: false, timer: null, heartbeat: null, pongTimer: null,
      sent: 0, pingAt: null, sentAtPing: 0, acked: 0, lastPingAt: performance.now()
    }
    client = c
    /** @param {string} r */
    const reply = (r) => { stats.replies++; ws.send(r) }
    for (const r of c.session.onOpen?.() ?? []) reply(r) // e.g. BitMEX's welcome message
    ws.on('message', (data) => {
      const { replies, problem } = c.session.onClientMessage(data.toString())
      if (problem !== undefined) {
        stats.clientProblems++
        log(`replay: client request not understood: ${problem}`)
      }
      for (const r of replies) reply(r)
      if (c.session.subscribed && !c.ready && c.timer === null) {
        c.timer = setTimeout(() => { c.ready = true; wake() }, settleMs)
      }
    })
    ws.on('pong', () => {
      if (c.pingAt === null) return
      c.acked = c.sentAtPing
      c.pingAt = null
      clearTimeout(c.pongTimer)
    })
    c.heartbeat = setInterval(() => checkAlive(c), heartbeatMs)
    c.heartbeat.unref?.()
    ws.on('error', () => { stats.clientErrors++ })
    ws.on('close', () => {
      if (c.timer !== null) clearTimeout(c.timer)
      clearInterval(c.heartbeat)
      clearTimeout(c.pongTimer)
      if (client === c) client = null
      wake()
    })
  })

  /**
   * Pings the client every pingIntervalMs (measured from the last ping, so that the pings keep their
   * cadence however fast the pongs come); one that has not answered within stallTimeoutMs stopped
   * reading, judged by a timer of its own at that deadline. A client that stops reading is therefore
   * terminated within pingIntervalMs + stallTimeoutMs of its last pong (plus timer latency).
   * @param {Client} c
   */
  function checkAlive (c) {
    if (c.ws.readyState !== WebSocket.OPEN || c.pingAt !== null) return
    const now = performance.now()
    // half a heartbeat of tolerance: a tick that fires a little early still sends the ping it is for
    if (now - c.lastPingAt < pingIntervalMs - heartbeatMs / 2) return
    c.pingAt = c.lastPingAt = now
    c.sentAtPing = c.sent
    c.pongTimer = setTimeout(() => stalled(c, `no pong to a ping within ${stallTimeoutMs} ms`), stallTimeoutMs)
    c.pongTimer.unref?.()
    c.ws.ping()
  }

  /**
   * Terminates the connection of a client that stopped reading; its reconnect resumes the replay.
   * @param {Client} c @param {string} why
   */
  function stalled (c, why) {
    if (c.ws.readyState !== WebSocket.OPEN) return
    const unacknowledged = c.sent - c.acked
    stats.stalls++
    stats.sentUnacknowledged += unacknowledged
    log(`replay: the client stopped reading (${why}): connection terminated after ${c.sent} frame(s), up to ${unacknowledged} of them unacknowledged; its reconnect resumes the replay`)
    c.ready = false
    c.ws.terminate()
    wake()
  }
  await new Promise((resolve, reject) => {
    http.once('error', reject)
    http.listen(0, '127.0.0.1', () => { http.off('error', reject); resolve(undefined) })
  })
  const port = /** @type {import('node:net').AddressInfo} */ (http.address()).port
  const url = `ws://127.0.0.1:${port}${protocol.path}`
  const restUrl = `http://127.0.0.1:${port}${REST_PREFIX.slice(0, -1)}`

  /** Resolves with a connected, subscribed client, not held; adds the time waited to `paused`. */
  let pausedMs = 0
  const readyClient = async () => {
    const t0 = performance.now()
    while (client === null || !client.ready || client.ws.readyState !== WebSocket.OPEN || state.held) {
      if (state.closed) throw new ClosedError()
      await new Promise((resolve) => wakers.push(resolve))
    }
    pausedMs += performance.now() - t0
    return client
  }

  /** Resolves on the next wake() or after ms. @param {number} ms */
  const wakeOrTimeout = (ms) => new Promise((resolve) => {
    const t = setTimeout(resolve, ms)
    wakers.push(() => { clearTimeout(t); resolve(undefined) })
  })

  /**
   * Waits while the socket has too much queued; a buffer that does not drain for stallTimeoutMs means the
   * client stopped reading.
   * @param {Client} c
   */
  const backpressure = async (c) => {
    const ws = c.ws
    if (ws.bufferedAmount <= maxBufferedBytes) return
    stats.backpressureWaits++
    let lowest = ws.bufferedAmount
    let progressAt = performance.now()
    while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount > maxBufferedBytes / 2) {
      await wakeOrTimeout(Math.max(1, progressAt + stallTimeoutMs - performance.now()))
      if (ws.bufferedAmount < lowest) {
        lowest = ws.bufferedAmount
        progressAt = performance.now()
      } else if (performance.now() - progressAt >= stallTimeoutMs) {
        stalled(c, `its send buffer did not drain for ${stallTimeoutMs} ms`)
      }
    }
  }
  const onSent = () => { if (wakers.length > 0) wake() }

  const pump = async () => {
    let anchorWall = null
    let anchorRec = 0
    let anchorPaused = 0
    for await (const rec of recording) {
      let c = await readyClient()
      const out = c.session.route(rec)
      if (out === null) {
        stats.skipped++
        continue
      }
      if (speed !== 'max' && Number.isFinite(rec.tsUs)) {
        if (anchorWall === null) {
          anchorWall = performance.now()
          anchorRec = rec.tsUs
          anchorPaused = pausedMs
        }
        // time spent without a client does not count: the replay resumes where it paused
        const due = anchorWall + (pausedMs - anchorPaused) + (rec.tsUs - anchorRec) / 1000 / speed
        const wait = due - performance.now()
        if (wait >= 1) await sleep(wait)
      }
      for (;;) {
        c = await readyClient()
        await backpressure(c)
        if (c.ws.readyState === WebSocket.OPEN && client === c && c.ready) break
      }
      c.ws.send(out, onSent)
      c.sent++
      stats.sent++
      if (cutAfter > 0 && stats.sent === cutAfter) {
        stats.cuts++
        log(`replay: dropping the connection after ${cutAfter} frames (cutAfter); the client's reconnect resumes the replay`)
        c.ready = false
        c.ws.close(1012, 'replay cutAfter')
      }
    }
  }

  const finish = (error) => {
    state.finished = true
    state.error = error
    http.close() // no new connections: a late reconnect is refused
    if (client !== null) {
      if (error === null) client.ws.close(1000, 'replay finished')
      else client.ws.close(1011, 'replay failed')
    }
    wake()
  }
  const done = pump().then(
    () => finish(null),
    (e) => {
      if (e instanceof ClosedError) return
      log(`replay: failed: ${e.message}`)
      finish(e)
    }
  )

  return {
    url,
    restUrl,
    port,
    get finished () { return state.finished },
    get error () { return state.error },
    done,
    stats,
    hold (on) {
      if (on && !state.held) stats.holds++
      state.held = on
      if (!on) wake()
    },
    async close () {
      state.closed = true
      if (!state.finished) {
        state.finished = true
        state.error = state.error ?? new Error('replay server closed before the end of the recording')
      }
      for (const ws of wss.clients) ws.terminate()
      wake()
      await new Promise((resolve) => wss.close(() => resolve(undefined)))
      http.closeAllConnections?.()
      await new Promise((resolve) => http.close(() => resolve(undefined)))
    }
  }
}
