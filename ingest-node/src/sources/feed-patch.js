// The one patch of tardis-dev's real-time feed classes, used by the live source and the replay source
// (tardis-stream.js installs it for the life of a stream through setRealTimeFeedFactory):
// - a failed manual snapshot (Binance: the REST depth snapshot fetched ~1 s after connecting) terminates
//   the WebSocket before tardis-dev's own handler runs. tardis-dev 13.35.3 (realtimefeed.js
//   `_onConnectionEstabilished`) only does `this._ws.emit('error', e)`: ws's createWebSocketStream then
//   destroys its duplex but waits for a 'close' that never comes, pauses the socket, and every later frame
//   goes nowhere. Terminated, the socket closes, tardis-dev's reconnect runs and a `disconnect` comes out.
// - every raw exchange message the feed deserialized is counted (`onMessage`), so that a replay can
//   compare what its server sent with what tardis-dev received.
// - optionally (replays) the feed's REST base URL (`httpURL`) points elsewhere.
// - optionally (`record`, --record-dir) every raw message the feed deserialized, and every manual
//   snapshot it fetched over REST (Binance's `<sym>@depthSnapshot`, pushed to its manualSnapshotsBuffer),
//   is handed to a recorder as it arrives, before normalization (recorder.js).
// - once the stream is over (`counters.released`), tardis-dev's wait for the first two messages of a
//   connection ends: `_onConnectionEstabilished` polls `_receivedMessagesCount` every 100 ms and never
//   gives up, so a connection that got fewer (a replay with nothing for the symbols) kept the process alive.
// - once a replay is over, a REST call to its (closed) server is not retried: tardis-dev's back-off
//   retries (10, exponential) kept the process up for minutes after the end.
// - once the stream is over, a REST poller among a feed's connections (Binance futures' open interest)
//   stops polling, instead of polling a closed replay server every few seconds and keeping the process up.
// Binance's factory class is a MultiConnectionRealTimeFeedBase whose WebSocket feeds are instances of a
// class tardis-dev does not export; they are patched as `_getRealTimeFeeds` yields them.
import { createRequire } from 'node:module'
import { getRealTimeFeedFactory, setRealTimeFeedFactory } from 'tardis-dev'

const require = createRequire(import.meta.url)
/** tardis-dev's HTTP client module (its REST calls read `httpClient` from it at each call) */
const handy = require('tardis-dev/dist/handy.js')
/** REST base URLs of streams that are over (a replay server that has closed): no retry against them */
const closedRestUrls = new Set()
let restRetriesPatched = false

/**
 * tardis-dev retries a failed REST call up to 10 times with exponential back-off (Binance: minutes in
 * all); against a replay server that has closed, those retries kept the process up long after the
 * replay's end. Once a stream with a `restUrl` is released, a failed call to it is not retried.
 */
function patchRestRetries () {
  if (restRetriesPatched) return
  restRetriesPatched = true
  handy.httpClient = handy.httpClient.extend({
    retry: {
      calculateDelay: ({ computedValue, error }) => {
        const url = String(error?.options?.url ?? '')
        for (const base of closedRestUrls) if (url.startsWith(base)) return 0
        return computedValue
      }
    }
  })
}

/**
 * @typedef {object} FeedCounters
 * @property {number} received raw messages deserialized by tardis-dev's feed (its `onMessage` calls)
 * @property {number} snapshotFailures manual snapshot fetches that failed (each one closed its connection)
 * @property {string|null} lastSnapshotError
 * @property {boolean} released the stream is over: tardis-dev's connections stop waiting for messages
 * @property {number} lastMessageMs wall time (ms) of the last raw message (0: none yet)
 * @property {number} recordErrors raw messages the recorder threw on (not recorded; the feed goes on)
 */

/** @returns {FeedCounters} */
export const newFeedCounters = () => ({ received: 0, snapshotFailures: 0, lastSnapshotError: null, released: false, lastMessageMs: 0, recordErrors: 0 })

/**
 * Wraps one WebSocket feed's `onMessage` and `provideManualSnapshots` (instance properties over
 * tardis-dev's methods, which are still called); a REST poller's `poolDataToStream` stops once the stream
 * is released.
 * With `record`, each raw message (and each manual snapshot as tardis-dev will yield it) goes to it
 * first; a record that throws is counted in `counters.recordErrors`, never breaks the feed.
 * @template T
 * @param {T} feed
 * @param {FeedCounters} counters
 * @param {((msg: any) => void)|undefined} [record]
 * @returns {T}
 */
export function patchConnection (feed, counters, record) {
  const f = /** @type {any} */ (feed)
  if (typeof f.poolDataToStream === 'function') {
    // a REST poller (Binance futures' open interest): once the stream is over it stops, where tardis-dev
    // would poll a closed replay server (or the exchange) every few seconds for ever and keep the
    // process alive. tardis-dev schedules the next poll when this returns: that timer is cleared right
    // after (destroying the output instead makes its reader throw a premature close)
    const pool = f.poolDataToStream
    f.poolDataToStream = async function (out) {
      if (counters.released) {
        setImmediate(() => clearTimeout(this._tid))
        return
      }
      return pool.call(this, out)
    }
    return feed
  }
  if (typeof f.onMessage !== 'function' || typeof f.provideManualSnapshots !== 'function') return feed
  const onMessage = f.onMessage
  const provideManualSnapshots = f.provideManualSnapshots
  let count = f._receivedMessagesCount ?? 0
  Object.defineProperty(f, '_receivedMessagesCount', {
    configurable: true,
    enumerable: true,
    get: () => (counters.released ? Number.MAX_SAFE_INTEGER : count),
    set: (v) => { count = v }
  })
  const keep = record === undefined
    ? null
    : (msg) => {
        try {
          record(msg)
        } catch {
          counters.recordErrors++
        }
      }
  f.onMessage = function (msg) {
    counters.received++
    counters.lastMessageMs = Date.now()
    if (keep !== null) keep(msg)
    return onMessage.call(this, msg)
  }
  if (keep !== null && Array.isArray(f.manualSnapshotsBuffer)) {
    // tardis-dev pushes each REST snapshot here and yields it after the next WebSocket message
    const buffer = f.manualSnapshotsBuffer
    buffer.push = function (...items) {
      for (const item of items) keep(item)
      return Array.prototype.push.apply(this, items)
    }
  }
  f.provideManualSnapshots = async function (...args) {
    try {
      return await provideManualSnapshots.apply(this, args)
    } catch (e) {
      counters.snapshotFailures++
      counters.lastSnapshotError = e?.message ?? String(e)
      this._ws?.terminate()
      throw e
    }
  }
  return feed
}

/**
 * A subclass of tardis-dev's feed class with the patch applied.
 * @param {any} Feed tardis-dev's real-time feed class (getRealTimeFeedFactory)
 * @param {{counters: FeedCounters, restUrl?: string, record?: (msg: any) => void}} options restUrl: replaces
 *   the feed's REST base URL; record: gets every raw message and manual snapshot
 * @returns {any}
 */
export function patchedFeedClass (Feed, { counters, restUrl, record }) {
  const multi = typeof Feed.prototype._getRealTimeFeeds === 'function'
  class PatchedFeed extends Feed {
    constructor (...args) {
      super(...args)
      if (restUrl !== undefined && 'httpURL' in this) this.httpURL = restUrl
      if (!multi) patchConnection(this, counters, record)
    }
  }
  if (multi) {
    PatchedFeed.prototype._getRealTimeFeeds = function * (...args) {
      for (const feed of Feed.prototype._getRealTimeFeeds.apply(this, args)) yield patchConnection(feed, counters, record)
    }
  }
  return PatchedFeed
}

/**
 * Installs the patched class as tardis-dev's feed factory of `exchange`.
 * @param {string} exchange
 * @param {{counters: FeedCounters, restUrl?: string, record?: (msg: any) => void}} options
 * @returns {() => void} undo: puts the previous factory back (unless another patch replaced ours since)
 */
export function installFeedPatch (exchange, options) {
  const Feed = getRealTimeFeedFactory(exchange)
  const Patched = patchedFeedClass(Feed, options)
  setRealTimeFeedFactory(exchange, Patched)
  if (options.restUrl !== undefined) patchRestRetries()
  return () => {
    if (getRealTimeFeedFactory(exchange) === Patched) setRealTimeFeedFactory(exchange, Feed)
    if (options.restUrl !== undefined) closedRestUrls.add(options.restUrl)
  }
}
