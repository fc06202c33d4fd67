// Replays recorded raw exchange frames through the SAME tardis-dev real-time code path as the live
// source: a local WebSocket server plays the recording, WSS_URL_<EXCHANGE> points tardis-dev at it.
import { access } from 'node:fs/promises'
import { readRecording, newRecordingStats } from '../replay/recording.js'
import { startReplayServer } from '../replay/server.js'
import { getRealTimeFeedFactory, setRealTimeFeedFactory } from 'tardis-dev'
import { tardisStream, wssUrlEnvName } from './tardis-stream.js'
import { selectDataTypes } from './availability.js'
import { silentLog } from '../log.js'

/**
 * @typedef {import('./tardis-stream.js').TardisStreamOptions & {
 *   files: string[],
 *   speed?: number|'max',
 *   cutAfter?: number,
 *   settleMs?: number,
 *   maxBufferedBytes?: number
 * }} ReplayOptions
 */

/**
 * Some tardis-dev feeds also call the exchange's REST API (Binance: exchangeInfo and depth snapshots for
 * book data, openInterest polling for derivative_ticker), which WSS_URL_<EXCHANGE> does not redirect.
 * During a replay the feed class is replaced by a subclass that differs only in its REST base URL
 * (`httpURL`), pointed at the replay server; everything else is tardis-dev's own code.
 * @param {string} exchange
 * @param {string} restUrl
 * @returns {() => void} undo
 */
export function redirectRest (exchange, restUrl) {
  const Feed = getRealTimeFeedFactory(exchange)
  class ReplayRestFeed extends Feed {
    constructor (...args) {
      super(...args)
      if ('httpURL' in this) this.httpURL = restUrl
    }
  }
  setRealTimeFeedFactory(exchange, ReplayRestFeed)
  return () => setRealTimeFeedFactory(exchange, Feed)
}

/**
 * The requested data types tardis-dev can stream for the exchange, checked (and the others logged) at
 * open, so that the start frame lists what is streamed; a usage error (unknown type) is reported as the
 * stream's end, as before.
 * @param {ReplayOptions} options
 * @param {import('../log.js').Log} log
 * @returns {{available: string[], error: string|null}}
 */
function replayDataTypes ({ exchange, dataTypes = ['trade'] }, log) {
  if (typeof exchange !== 'string' || exchange === '') return { available: dataTypes, error: null } // tardisStream says what is wrong
  try {
    return selectDataTypes({ exchange, dataTypes, log, label: 'replay' })
  } catch (e) {
    return { available: [], error: e.message }
  }
}

/**
 * Normalized messages of the recording. Ends with one `{type: 'end', reason: 'replay_finished'}` (or
 * reason 'error') in place of the disconnect that the final close of the socket produces; a drop in the
 * middle (cutAfter) comes through as a normal disconnect message.
 * @param {ReplayOptions} options
 * @returns {AsyncIterable<any> & {stats: Record<string, any>, dataTypes: string[]}} dataTypes: those streamed
 */
export function openReplay ({ files, speed = 'max', cutAfter = 0, settleMs, maxBufferedBytes, log = silentLog, timeoutIntervalMS = 0, ...rest }) {
  if (!Array.isArray(files) || files.length === 0) throw new Error('replay: --files is required (one or more recordings)')
  const recordingStats = newRecordingStats()
  const stats = { recording: recordingStats, server: /** @type {Record<string, number>|null} */ (null), tardis: /** @type {any} */ (null) }
  const selection = replayDataTypes(rest, log)

  async function * run () {
    if (selection.error !== null) {
      yield { type: 'end', reason: 'error', error: selection.error }
      return
    }
    for (const f of files) {
      try {
        await access(f)
      } catch (e) {
        throw new Error(`replay: cannot read recording ${f}: ${e.code ?? e.message}`)
      }
    }
    const server = await startReplayServer({
      exchange: rest.exchange,
      recording: readRecording(files, { stats: recordingStats, log }),
      speed,
      cutAfter,
      settleMs,
      maxBufferedBytes,
      log
    })
    stats.server = server.stats
    // read by tardis-dev at every (re)connection; left pointing at this (then closed) server afterwards
    // so a late reconnect of a stopped stream can never reach the real exchange
    process.env[wssUrlEnvName(rest.exchange)] = server.url
    log(`replay: ${files.length} file(s) at speed ${speed} through tardis-dev via ${wssUrlEnvName(rest.exchange)}=${server.url}`)
    const undoRest = redirectRest(rest.exchange, server.restUrl)
    const messages = tardisStream({ ...rest, dataTypes: selection.available, label: 'replay', log, timeoutIntervalMS, ignoreErrors: () => server.finished })
    stats.tardis = messages.stats
    try {
      for await (const m of messages) {
        if (m.type === 'disconnect' && server.finished) {
          // the server closed the socket after the last frame: the replay is over
          yield server.error === null
            ? { type: 'end', reason: 'replay_finished', error: null }
            : { type: 'end', reason: 'error', error: server.error.message }
          return
        }
        yield m
        if (m.type === 'end') return
      }
    } finally {
      undoRest()
      await server.close()
    }
  }

  return { stats, dataTypes: selection.available, [Symbol.asyncIterator]: () => run() }
}
