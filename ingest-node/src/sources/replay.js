// Replays recorded raw exchange frames through the SAME tardis-dev real-time code path as the live
// source: a local WebSocket server plays the recording, WSS_URL_<EXCHANGE> points tardis-dev at it, and
// tardis-dev's REST calls (Binance: exchangeInfo, depth snapshots) go to the same server (feed-patch.js).
//
// Before it starts, a recording the exchange protocol has to scan (Binance book data: is there a depth
// snapshot of every symbol?) is scanned; a data type the recording cannot feed is logged once and left
// out of `dataTypes`. At the end the replay checks itself: the frames its server sent against the raw
// messages tardis-dev received (ledgerCounts()); a difference, a stalled connection or a failed REST
// snapshot ends the stream with reason 'error'.
import { readRecording, newRecordingStats, checkRecordings } from '../replay/recording.js'
import { startReplayServer } from '../replay/server.js'
import { needsScan, scanRecordingSync } from '../replay/inventory.js'
import { tardisStream, wssUrlEnvName } from './tardis-stream.js'
import { selectDataTypes } from './availability.js'
import { newFeedCounters } from './feed-patch.js'
import { directMessages } from './replay-direct.js'
import { REPLAY_PATHS } from './replay-paths.js'
import { silentLog } from '../log.js'

export { REPLAY_PATHS }

/**
 * The path a replay takes: `auto` is direct at speed max without cutAfter (nothing to pace, no
 * connection to drop) and without recording, websocket otherwise. Recording (--record-dir) keeps what
 * tardis-dev's real-time feed receives, which only the WebSocket path has: direct with it is an error.
 * @param {{replayPath?: string, speed?: number|'max', cutAfter?: number, recording?: boolean}} o
 * @returns {'direct'|'websocket'}
 */
export function replayPathOf ({ replayPath = 'auto', speed = 'max', cutAfter = 0, recording = false }) {
  if (!REPLAY_PATHS.includes(replayPath)) throw new Error(`replay: replayPath must be one of ${REPLAY_PATHS.join(', ')}, got ${JSON.stringify(replayPath)}`)
  if (replayPath === 'direct' && recording) {
    throw new Error('replay: --replay-path direct cannot record: --record-dir keeps the raw messages tardis-dev\'s real-time feed receives, and only the websocket path has one (use --replay-path websocket or auto)')
  }
  if (replayPath !== 'auto') return /** @type {'direct'|'websocket'} */ (replayPath)
  return speed === 'max' && cutAfter === 0 && !recording ? 'direct' : 'websocket'
}

/**
 * @typedef {import('./tardis-stream.js').TardisStreamOptions & {
 *   files: string[],
 *   speed?: number|'max',
 *   cutAfter?: number,
 *   settleMs?: number,
 *   maxBufferedBytes?: number,
 *   stallTimeoutMs?: number,
 *   pingIntervalMs?: number,
 *   restWaitMs?: number,
 *   replayPath?: 'auto'|'direct'|'websocket'
 * }} ReplayOptions
 */

/**
 * @typedef {object} ReplayLedgerCounts
 * @property {{read: number, sent: number, received: number, skipped: number}} raw read: recording
 *   messages read; sent: recorded frames the replay server sent; received: recorded frames tardis-dev's
 *   feed deserialized (its raw messages less the server's own answers to its requests); skipped:
 *   recording messages not for a subscribed stream. Direct path: sent = received = recorded frames fed
 *   to the mappers
 * @property {Record<string, number>} normalized messages the source yielded, per tardis type (disconnect included, end not)
 * @property {Record<string, number>} internal normalized messages that only feed a computable (book_change)
 */

/**
 * The requested data types tardis-dev can stream for the exchange, checked (and the others logged) at
 * open, so that the start frame lists what is streamed; a usage error (unknown type) is reported as the
 * stream's end, as before.
 * @param {ReplayOptions} options
 * @param {import('../log.js').Log} log
 * @returns {{available: string[], unavailable: {type: string, reason: string}[], error: string|null}}
 */
function replayDataTypes ({ exchange, dataTypes = ['trade'] }, log) {
  if (typeof exchange !== 'string' || exchange === '') return { available: dataTypes, unavailable: [], error: null } // tardisStream says what is wrong
  try {
    return selectDataTypes({ exchange, dataTypes, log, label: 'replay' })
  } catch (e) {
    return { available: [], unavailable: [], error: e.message }
  }
}

/**
 * Leaves out the data types the recording cannot feed (the exchange protocol's scanRecording), logging
 * each once. Returns the scan's inventory for the replay server.
 * @param {{available: string[], unavailable: {type: string, reason: string}[], error: string|null}} selection updated in place
 * @param {{exchange: string, symbols: string[], files: string[], log: import('../log.js').Log}} o
 * @returns {any} inventory (null when nothing was scanned)
 */
function checkRecordingInventory (selection, { exchange, symbols, files, log }) {
  if (selection.error !== null || !Array.isArray(symbols) || symbols.length === 0) return null
  try {
    if (!needsScan(exchange, selection.available)) return null
  } catch {
    return null // no replay protocol for the exchange: the replay server says so
  }
  let scan
  try {
    scan = scanRecordingSync(exchange, files, { symbols, dataTypes: selection.available })
  } catch (e) {
    log(`replay: could not scan the recording before the start (${e.message}); streaming ${selection.available.join(', ')} as requested`)
    return null
  }
  const where = files.join(', ')
  for (const u of scan.unavailable) {
    log(`${u.type} not available for ${exchange} in this recording: ${u.reason} in ${where}`)
    selection.unavailable.push({ type: u.type, reason: `not in this recording: ${u.reason} in ${where}` })
  }
  const dropped = new Set(scan.unavailable.map((u) => u.type))
  selection.available = selection.available.filter((t) => !dropped.has(t))
  if (selection.available.length === 0) {
    selection.error = `replay: none of the requested data types can be replayed from ${where}: ${scan.unavailable.map((u) => `${u.type}: ${u.reason}`).join('; ')}`
  }
  return scan.inventory
}

/** @param {string} error */
const failed = (error) => ({ type: 'end', reason: 'error', error })

/**
 * The end of a replay that read every message and sent `sent` of them, when it failed for want of
 * data (the same on both paths); null when it did not.
 * @param {{recordingStats: import('../replay/recording.js').RecordingStats, files: string[], symbols: string[], dataTypes: string[], sent: number}} o
 */
function emptyReplayEnd ({ recordingStats: r, files, symbols, dataTypes, sent }) {
  const where = files.join(', ')
  if (r.messages === 0) {
    const reasons = Object.entries(r.badReasons).map(([k, n]) => `${k} ${n}`).join(', ')
    return failed(`replay: nothing usable in ${where}: ${r.lines} line(s), ${r.empty} empty, ${r.bad} malformed${reasons === '' ? '' : ` (${reasons})`}`)
  }
  if (sent === 0) {
    return failed(`replay: no message for ${symbols.join(', ')} (${dataTypes.join(', ')}) in ${where}: ${r.messages} message(s) read, none of a subscribed stream`)
  }
  return null
}

/**
 * Normalized messages of the recording. Ends with one `{type: 'end', reason: 'replay_finished'}` (or
 * reason 'error') in place of the disconnect that the final close of the socket produces; a drop in the
 * middle (cutAfter, a stalled connection, a failed REST snapshot) comes through as a normal disconnect
 * message.
 * @param {ReplayOptions} options
 * @returns {AsyncIterable<any> & {stats: Record<string, any>, dataTypes: string[], unavailable: {type: string, reason: string}[],
 *   ledgerCounts: () => ReplayLedgerCounts, hold: (on: boolean) => void}}
 *   dataTypes: those streamed; hold: pause the replay server's sending (a merge of several exchanges)
 */
export function openReplay ({
  files, speed = 'max', cutAfter = 0, settleMs, maxBufferedBytes, stallTimeoutMs, pingIntervalMs, restWaitMs,
  log = silentLog, timeoutIntervalMS = 0, replayPath = 'auto', ...rest
}) {
  if (!Array.isArray(files) || files.length === 0) throw new Error('replay: --files is required (one or more recordings)')
  const path = replayPathOf({ replayPath, speed, cutAfter, recording: rest.recorder != null })
  log(path === 'direct'
    ? `replay path: direct (recorded frames straight into tardis-dev's mappers, local timestamps = recorded receive times${replayPath === 'auto' ? '; auto: speed max, no cut-after' : ''}${speed !== 'max' || cutAfter > 0 ? `; it neither paces nor drops connections: speed ${speed} and cut-after ${cutAfter} are not applied` : ''})`
    : `replay path: websocket (a local replay server and tardis-dev's real-time client${replayPath === 'auto' ? `; auto: ${speed !== 'max' ? `speed ${speed}` : cutAfter > 0 ? `cut-after ${cutAfter}` : 'recording'}` : ''})`)
  if (path === 'direct') return openDirectReplay({ files, log, ...rest })
  const recordingStats = newRecordingStats()
  const stats = {
    recording: recordingStats,
    server: /** @type {Record<string, number>|null} */ (null),
    tardis: /** @type {any} */ (null)
  }
  const selection = replayDataTypes(rest, log)
  const inventory = checkRecordingInventory(selection, { exchange: rest.exchange, symbols: rest.symbols, files, log })
  /** @type {Record<string, number>} */
  const normalized = {}
  let feed = newFeedCounters()
  /** @type {Record<string, number>} */
  let internal = {}
  let held = false
  /** @type {import('../replay/server.js').ReplayServer|null} */
  let replayServer = null

  /** @returns {ReplayLedgerCounts} */
  const ledgerCounts = () => ({
    raw: {
      read: recordingStats.messages,
      sent: stats.server?.sent ?? 0,
      received: Math.max(0, feed.received - (stats.server?.replies ?? 0)),
      skipped: stats.server?.skipped ?? 0
    },
    normalized: { ...normalized },
    internal: { ...internal }
  })

  /**
   * The end of a replay whose server sent its last frame: what went wrong, if anything.
   * @param {import('../replay/server.js').ReplayServer} server
   */
  const finalEnd = (server) => {
    if (server.error !== null) return failed(server.error.message)
    const r = recordingStats
    const { sent, skipped, stalls, sentUnacknowledged } = server.stats
    const empty = emptyReplayEnd({ recordingStats: r, files, symbols: rest.symbols, dataTypes: selection.available, sent })
    if (empty !== null) return empty
    const { received } = ledgerCounts().raw
    const what = []
    if (stalls > 0) what.push(`${stalls} connection(s) whose client stopped reading terminated (up to ${sentUnacknowledged} frame(s) unacknowledged)`)
    if (feed.snapshotFailures > 0) what.push(`tardis-dev's REST snapshot request failed ${feed.snapshotFailures} time(s) (last: ${feed.lastSnapshotError})`)
    if (received !== sent) what.push(`${Math.abs(sent - received)} frame(s) ${received < sent ? 'lost' : 'more received than sent'}`)
    if (what.length === 0) return { type: 'end', reason: 'replay_finished', error: null }
    return failed(`replay: ${what.join('; ')}: server sent ${sent} frames, tardis-dev received ${received} (${r.messages} recording messages read, ${skipped} not subscribed, ${normalized.disconnect ?? 0} disconnect(s))`)
  }

  async function * run () {
    if (selection.error !== null) {
      yield failed(selection.error)
      return
    }
    try {
      await checkRecordings(files)
    } catch (e) {
      yield failed(`replay: ${e.message}`)
      return
    }
    const server = await startReplayServer({
      exchange: rest.exchange,
      recording: readRecording(files, { stats: recordingStats, log }),
      speed,
      cutAfter,
      settleMs,
      maxBufferedBytes,
      stallTimeoutMs,
      pingIntervalMs,
      restWaitMs,
      inventory,
      log
    })
    stats.server = server.stats
    replayServer = server
    if (held) server.hold(true)
    // read by tardis-dev at every (re)connection; left pointing at this (then closed) server afterwards
    // so a late reconnect of a stopped stream can never reach the real exchange
    process.env[wssUrlEnvName(rest.exchange)] = server.url
    log(`replay: ${files.length} file(s) at speed ${speed} through tardis-dev via ${wssUrlEnvName(rest.exchange)}=${server.url}`)
    const messages = tardisStream({
      ...rest, dataTypes: selection.available, restUrl: server.restUrl, label: 'replay', log, timeoutIntervalMS, ignoreErrors: () => server.finished
    })
    stats.tardis = messages.stats
    feed = messages.feed
    internal = messages.stats.internal ?? {}
    try {
      for await (const m of messages) {
        if (m.type === 'disconnect' && server.finished) {
          // the server closed the socket after the last frame: the replay is over
          yield finalEnd(server)
          return
        }
        if (m.type === 'end') {
          yield m
          return
        }
        normalized[m.type] = (normalized[m.type] ?? 0) + 1
        yield m
      }
    } finally {
      await server.close()
    }
  }

  /** @param {boolean} on true: the replay server sends nothing more until hold(false) (mergeSources) */
  const hold = (on) => {
    held = on
    replayServer?.hold(on)
  }
  return { stats, dataTypes: selection.available, unavailable: selection.unavailable, ledgerCounts, hold, [Symbol.asyncIterator]: () => run() }
}

/**
 * openReplay's direct path (replay-direct.js): the same checks before the start (data types, the
 * recording's inventory), the same stats / ledgerCounts / hold / end, no server.
 * @param {import('./tardis-stream.js').TardisStreamOptions & {files: string[]}} options
 */
function openDirectReplay ({ files, log = silentLog, ...rest }) {
  const recordingStats = newRecordingStats()
  const selection = replayDataTypes(rest, log)
  const inventory = checkRecordingInventory(selection, { exchange: rest.exchange, symbols: rest.symbols, files, log })
  /** @type {Record<string, number>} */
  const normalized = {}
  let counts = { sent: 0, skipped: 0, mapperErrors: 0, clientProblems: 0 }
  /** what metrics.js reads of a tardis-dev stream (tardis-stream.js's stats), kept by the direct path */
  const tardis = {
    messages: 0,
    disconnects: 0,
    reconnects: 0,
    connectionErrors: 0,
    ignoredErrors: 0,
    /** @type {Record<string, number>} */
    internal: {},
    normalized,
    feed: newFeedCounters(),
    lastDisconnectMs: 0
  }
  const stats = { recording: recordingStats, server: null, tardis, direct: counts }
  let held = false
  /** @type {((on: boolean) => void)|null} */
  let holdDirect = null

  /** @returns {ReplayLedgerCounts} */
  const ledgerCounts = () => ({
    raw: { read: recordingStats.messages, sent: counts.sent, received: counts.sent, skipped: counts.skipped },
    normalized: { ...normalized },
    internal: { ...tardis.internal }
  })

  async function * run () {
    if (selection.error !== null) {
      yield failed(selection.error)
      return
    }
    if (typeof rest.exchange !== 'string' || rest.exchange === '') throw new Error('replay: an exchange is required')
    if (!Array.isArray(rest.symbols) || rest.symbols.length === 0) throw new Error(`replay: at least one symbol is required for ${rest.exchange}`)
    try {
      await checkRecordings(files)
    } catch (e) {
      yield failed(`replay: ${e.message}`)
      return
    }
    const direct = directMessages({
      exchange: rest.exchange,
      symbols: rest.symbols,
      dataTypes: selection.available,
      files,
      bookDepth: rest.bookDepth,
      bookIntervalMs: rest.bookIntervalMs,
      inventory,
      recordingStats,
      log
    })
    stats.direct = counts = direct.counts
    tardis.internal = direct.internal
    holdDirect = direct.hold
    if (held) direct.hold(true)
    log(`replay: ${files.length} file(s) at speed max straight into tardis-dev's ${rest.exchange} mappers`)
    try {
      for await (const batch of direct.messages) {
        tardis.feed.received = counts.sent
        tardis.feed.lastMessageMs = Date.now()
        for (const m of batch) {
          normalized[m.type] = (normalized[m.type] ?? 0) + 1
          if (m.type === 'disconnect') {
            tardis.disconnects++
            tardis.reconnects++
            tardis.lastDisconnectMs = Date.now()
          } else {
            tardis.messages++
          }
        }
        yield batch // an array: the pipeline and mergeSources take its messages in order
      }
    } catch (e) {
      log(`replay: failed: ${e.message}`)
      yield failed(e.message)
      return
    }
    tardis.feed.received = counts.sent
    yield emptyReplayEnd({ recordingStats, files, symbols: rest.symbols, dataTypes: selection.available, sent: counts.sent }) ??
      { type: 'end', reason: 'replay_finished', error: null }
  }

  /** @param {boolean} on true: no recorded frame is read until hold(false) (mergeSources) */
  const hold = (on) => {
    held = on
    holdDirect?.(on)
  }
  return { stats, dataTypes: selection.available, unavailable: selection.unavailable, ledgerCounts, hold, [Symbol.asyncIterator]: () => run() }
}
