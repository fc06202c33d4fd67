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
import { silentLog } from '../log.js'

/**
 * @typedef {import('./tardis-stream.js').TardisStreamOptions & {
 *   files: string[],
 *   speed?: number|'max',
 *   cutAfter?: number,
 *   settleMs?: number,
 *   maxBufferedBytes?: number,
 *   stallTimeoutMs?: number,
 *   pingIntervalMs?: number,
 *   restWaitMs?: number
 * }} ReplayOptions
 */

/**
 * @typedef {object} ReplayLedgerCounts
 * @property {{read: number, sent: number, received: number, skipped: number}} raw read: recording
 *   messages read; sent: recorded frames the replay server sent; received: recorded frames tardis-dev's
 *   feed deserialized (its raw messages less the server's own answers to its requests); skipped:
 *   recording messages not for a subscribed stream
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
  log = silentLog, timeoutIntervalMS = 0, ...rest
}) {
  if (!Array.isArray(files) || files.length === 0) throw new Error('replay: --files is required (one or more recordings)')
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
    const where = files.join(', ')
    if (r.messages === 0) {
      const reasons = Object.entries(r.badReasons).map(([k, n]) => `${k} ${n}`).join(', ')
      return failed(`replay: nothing usable in ${where}: ${r.lines} line(s), ${r.empty} empty, ${r.bad} malformed${reasons === '' ? '' : ` (${reasons})`}`)
    }
    const { sent, skipped, stalls, sentUnacknowledged } = server.stats
    if (sent === 0) {
      return failed(`replay: no message for ${rest.symbols.join(', ')} (${selection.available.join(', ')}) in ${where}: ${r.messages} message(s) read, none of a subscribed stream`)
    }
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
