// The direct replay path: recorded frames go straight into tardis-dev's mappers, without the local
// WebSocket server and tardis-dev's real-time client in between (at --speed max every frame crossing
// the socket was most of the cost). What reaches the mappers is what the WebSocket path's client would
// have received, decided by the same code:
// - the subscriptions are the subscribe messages tardis-dev's own real-time feed class builds for the
//   requested data types (its mapToSubscribeMessages), answered by the replay protocol's session
//   (src/replay/exchanges/*.js) exactly as the replay server answers them; the session's greeting and
//   answers go to the mappers too, as they reach tardis-dev's client;
// - each recorded message goes through that session's `route(rec)`: null = not for a subscribed stream
//   (skipped), else the text the server would send (Binance's unwrapped REST depth snapshot becomes
//   `{"stream":"<sym>@depthSnapshot","generated":true,...}`, BitMEX rows of unsubscribed symbols are
//   left out, a Deribit `.raw` channel is renamed as subscribed, ...).
// The mappers are driven as tardis-dev's normalizeMessages drives them (`canHandle`, then `map`), with
// the symbol filter of streamNormalized, then compute(computeBookSnapshots) for book snapshots, with
// book_change counted as internal, not yielded (as tardis-stream.js does).
// The one difference from the WebSocket path: localTimestamp is the RECORDED receive time of the frame
// (as tardis-dev's own replay does), not the time it arrived through the socket.
// The mappers are created with the current time, as streamNormalized creates them, so that they are
// the same mapper variants as in the WebSocket path (tardis-dev picks some by date, e.g. whether a
// Binance book snapshot that does not overlap its updates is an error).
import { setImmediate as turn } from 'node:timers/promises'
import { createRequire } from 'node:module'
import { compute, getRealTimeFeedFactory } from 'tardis-dev'
import { normalizersFor } from './tardis-stream.js'
import { protocolFor } from '../replay/exchanges/index.js'
import { readRecordingBatches } from '../replay/recording.js'
import { dateFromUs } from '../convert.js'
import { silentLog } from '../log.js'

const require = createRequire(import.meta.url)
/** tardis-dev's own filter builder (the one streamNormalized uses); not re-exported by its index */
const { getFilters } = require('tardis-dev/dist/handy.js')

/** Yield to the event loop at least this often (ms of work), so metrics, signals and timers run. */
const TURN_EVERY_MS = 10

/**
 * The subscribe messages tardis-dev's real-time feed of `exchange` sends on connecting, as text.
 * The feed objects are only constructed (they connect when iterated, which never happens here).
 * @param {string} exchange
 * @param {any[]} filters tardis-dev filters (getFilters of the mappers)
 * @returns {string[]}
 */
export function subscribeMessagesOf (exchange, filters) {
  const Feed = getRealTimeFeedFactory(exchange)
  const feed = new Feed(exchange, filters, 0, undefined)
  const connections = typeof feed._getRealTimeFeeds === 'function' ? [...feed._getRealTimeFeeds(exchange, filters, 0, undefined)] : [feed]
  const out = []
  for (const c of connections) {
    // REST pollers (Binance futures openInterest) subscribe to nothing; in the WebSocket path their
    // requests get a 404 from the replay server and yield nothing either
    if (typeof c.mapToSubscribeMessages !== 'function') continue
    for (const m of c.mapToSubscribeMessages(c._filters)) out.push(JSON.stringify(m))
  }
  return out
}

/**
 * @typedef {object} DirectReplayOptions
 * @property {string} exchange
 * @property {string[]} symbols
 * @property {string[]} dataTypes the data types to stream (already checked: openReplay's selection)
 * @property {string[]} files
 * @property {number} [bookDepth]
 * @property {number} [bookIntervalMs]
 * @property {any} [inventory] the protocol's scanRecording result, for its createRecordingState
 * @property {import('../replay/recording.js').RecordingStats} recordingStats updated as the recording is read
 * @property {import('../log.js').Log} [log]
 */

/**
 * Normalized messages of the recording, through the mappers directly. Yields data messages (and a
 * `disconnect` where a mapper threw, after which the mappers start afresh, as a reconnect of the
 * WebSocket path would); returns when the recording is read. A recording that cannot be read throws
 * (after the messages before the failure were yielded).
 * @param {DirectReplayOptions} options
 * @returns {{messages: AsyncGenerator<any>, counts: {sent: number, skipped: number, mapperErrors: number, clientProblems: number}, internal: Record<string, number>,
 *   hold: (on: boolean) => void}}
 */
export function directMessages ({ exchange, symbols, dataTypes, files, bookDepth = 10, bookIntervalMs = 100, inventory = null, recordingStats, log = silentLog }) {
  const protocol = protocolFor(exchange)
  const { normalizers, computables, internalTypes } = normalizersFor(dataTypes, { bookDepth, bookIntervalMs })
  const counts = { sent: 0, skipped: 0, mapperErrors: 0, clientProblems: 0 }
  /** @type {Record<string, number>} */
  const internal = {}
  const upper = symbols.map((s) => s.toUpperCase())
  const allSymbols = upper.length === 0
  const wantedSet = new Set(upper)
  let held = false
  /** @type {(() => void)|null} */
  let release = null

  const createMappers = () => normalizers.map((n) => n(exchange, new Date()))
  const subscribe = getFilters(createMappers(), symbols)
  const subscribeMessages = subscribeMessagesOf(exchange, subscribe)

  /**
   * A new protocol session, subscribed as tardis-dev's feed subscribes; the frames it sends before any
   * recorded one (greeting, answers).
   * @param {any} shared
   */
  const connect = (shared) => {
    const session = protocol.createSession(shared)
    const replies = [...(session.onOpen?.() ?? [])]
    for (const m of subscribeMessages) {
      const { replies: answers, problem } = session.onClientMessage(m)
      if (problem !== undefined) {
        counts.clientProblems++
        log(`replay (direct): tardis-dev's subscribe message not understood by the ${exchange} replay protocol: ${problem}`)
      }
      replies.push(...answers)
    }
    return { session, replies }
  }

  /**
   * One frame through the mappers as normalizeMessages drives them (canHandle, then map); the
   * messages of subscribed symbols appended to `out`. Returns the error a mapper threw, else null.
   * @param {any[]} mappers @param {any} msg @param {Date} localTimestamp @param {any[]} out
   */
  const feed = (mappers, msg, localTimestamp, out) => {
    try {
      for (let k = 0; k < mappers.length; k++) {
        const mapper = mappers[k]
        if (!mapper.canHandle(msg)) continue
        const mapped = mapper.map(msg, localTimestamp)
        if (!mapped) continue
        for (const m of mapped) if (allSymbols || wantedSet.has(m.symbol)) out.push(m)
      }
    } catch (e) {
      return e
    }
    return null
  }

  /**
   * tardis-dev's normalized messages (book_change included), before compute: an array per batch of
   * recorded messages (readRecordingBatches), so that the async generators between the file and the
   * pipeline turn once per batch, not once per message.
   */
  async function * normalized () {
    const shared = protocol.createRecordingState(inventory)
    let { session, replies } = connect(shared)
    let mappers = createMappers()
    let lastTurn = performance.now()
    for await (const batch of readRecordingBatches(files, { stats: recordingStats, log })) {
      const out = []
      for (const rec of batch) {
        const routed = session.route(rec)
        if (routed === null) {
          counts.skipped++
          continue
        }
        counts.sent++
        const localTimestamp = dateFromUs(rec.tsUs)
        let failed = null
        if (replies.length === 0) {
          // the common case: one frame, no array of frames to go through
          failed = feed(mappers, routed === rec.raw ? rec.data : JSON.parse(routed), localTimestamp, out)
        } else {
          // the session's greeting and answers reach the client before the first recorded frame
          const msgs = [...replies, routed]
          replies = []
          for (const text of msgs) {
            // the parse the WebSocket client would do; a frame sent as recorded is parsed already
            failed = feed(mappers, text === rec.raw ? rec.data : JSON.parse(text), localTimestamp, out)
            if (failed !== null) break
          }
        }
        if (failed !== null) {
          // streamNormalized: a mapper error is a disconnect, and a new connection with fresh mappers
          counts.mapperErrors++
          if (counts.mapperErrors <= 5) log(`replay (direct): tardis-dev's ${exchange} mapper failed on ${rec.file}:${rec.line} (${failed.message}); fresh mappers and subscription, as the WebSocket path's reconnect`)
          out.push({ type: 'disconnect', exchange, localTimestamp, symbols })
          mappers = createMappers();
          ({ session, replies } = connect(shared))
        }
      }
      if (out.length > 0) yield out
      // before the next batch is read: a hold (mergeSources) and a turn of the event loop
      while (held) await new Promise((resolve) => { release = () => resolve(undefined) })
      if (performance.now() - lastTurn >= TURN_EVERY_MS) {
        await turn()
        lastTurn = performance.now()
      }
    }
  }

  /** @param {AsyncIterable<any[]>} batches */
  async function * oneByOne (batches) {
    for await (const batch of batches) yield * batch
  }

  /** Arrays of normalized messages: one per batch read, or (book snapshots computed) one per message. */
  async function * messages () {
    if (computables.length === 0) {
      for await (const batch of normalized()) yield batch
      return
    }
    for await (const m of compute(oneByOne(normalized()), ...computables)) {
      if (internalTypes.has(m.type)) {
        internal[m.type] = (internal[m.type] ?? 0) + 1
        continue
      }
      yield [m]
    }
  }

  /** @param {boolean} on */
  const hold = (on) => {
    held = on
    if (!on && release !== null) { const r = release; release = null; r() }
  }
  return { messages: messages(), counts, internal, hold }
}
