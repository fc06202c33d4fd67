// The one tardis-dev real-time code path, shared by the live source and the replay source:
// streamNormalized(...) (+ compute(computeBookSnapshots) for book snapshots) with disconnect messages,
// plus the fail-fast rule: an error before any data ever arrived ends the stream with an `end`
// message (reason error) instead of tardis-dev's endless retries.
// Requested data types that tardis-dev cannot stream for the exchange are logged once and left out
// (see availability.js); the returned stream's `dataTypes` lists the types actually streamed.
// tardis-dev's feed class is patched for the life of the stream (feed-patch.js): a failed manual
// snapshot closes its connection (a disconnect, then tardis-dev's reconnect), and the raw messages it
// received are counted for ledgerCounts().
import { streamNormalized, compute, computeBookSnapshots, getRealTimeFeedFactory } from 'tardis-dev'
import { DATA_TYPES, NORMALIZER_OF, selectDataTypes } from './availability.js'
import { installFeedPatch, newFeedCounters } from './feed-patch.js'
import { silentLog } from '../log.js'

export { DATA_TYPES }

/** @param {string} exchange */
export const wssUrlEnvName = (exchange) => `WSS_URL_${exchange.toUpperCase().replace(/-/g, '_')}`

/**
 * The WebSocket URL tardis-dev will use for `exchange` (the WSS_URL_<EXCHANGE> override, else its built-in URL).
 * @param {string} exchange
 */
export function wssUrlOf (exchange) {
  const override = process.env[wssUrlEnvName(exchange)]
  if (override !== undefined) return override
  try {
    const Feed = getRealTimeFeedFactory(exchange)
    const url = new Feed(exchange, [], undefined, undefined).wssURL
    return typeof url === 'string' ? url : `(built-in URL of ${exchange})`
  } catch {
    return `(built-in URL of ${exchange})`
  }
}

/**
 * @typedef {object} TardisStreamOptions
 * @property {string} exchange tardis exchange id (binance, binance-futures, ...)
 * @property {string[]} symbols exchange-native ids (case as tardis-dev expects: binance lower or upper both work)
 * @property {string[]} [dataTypes] subset of DATA_TYPES (default ['trade'])
 * @property {number} [bookDepth] book_snapshot levels (default 10)
 * @property {number} [bookIntervalMs] book_snapshot interval in ms (default 100; 0 = on every change)
 * @property {number} [timeoutIntervalMS] tardis-dev stale-connection timeout (default 10000; 0 disables)
 * @property {number} [maxEmptyConnections] disconnects before any data after which we give up (default 5)
 * @property {() => boolean} [ignoreErrors] errors are expected now (e.g. replay over): count, do not act
 * @property {string} [restUrl] replaces the REST base URL of tardis-dev's feed (replays: the replay server)
 * @property {string} [label] name used in log and error text
 * @property {{write: (exchange: string, msg: any) => void}|null} [recorder] gets every raw message
 *   tardis-dev's feed receives (and its REST manual snapshots), before normalization (--record-dir)
 * @property {import('../log.js').Log} [log]
 */

/**
 * @param {string[]} dataTypes
 * @param {{bookDepth: number, bookIntervalMs: number}} book
 */
export function normalizersFor (dataTypes, { bookDepth, bookIntervalMs }) {
  const normalizers = []
  const computables = []
  /** normalized types that are only an input of a computable: skipped (counted), not frames */
  const internalTypes = new Set()
  for (const t of dataTypes) {
    const normalizer = Object.hasOwn(NORMALIZER_OF, t) ? NORMALIZER_OF[t] : undefined
    if (normalizer === undefined) throw new Error(`unknown data type ${JSON.stringify(t)} (known: ${DATA_TYPES.join(', ')})`)
    normalizers.push(normalizer)
    if (t === 'book_snapshot') {
      computables.push(computeBookSnapshots({ depth: bookDepth, interval: bookIntervalMs }))
      internalTypes.add('book_change')
    }
  }
  if (normalizers.length === 0) throw new Error('no data types given')
  return { normalizers, computables, internalTypes }
}

/**
 * Describes a connection error with its code (ENOTFOUND, EAI_AGAIN, ECONNREFUSED, ...).
 * @param {any} err
 */
export function describeError (err) {
  if (err == null) return 'unknown error'
  const msg = err.message ?? String(err)
  const code = err.code !== undefined && !msg.includes(err.code) ? ` (${err.code})` : ''
  return `${msg}${code}`
}

/**
 * @typedef {object} StreamLedgerCounts
 * @property {{received: number}} raw received: raw exchange messages tardis-dev's feed deserialized
 *   (every one, the exchange's answers to the subscribe messages included)
 * @property {Record<string, number>} normalized messages yielded, per tardis type (disconnect included)
 * @property {Record<string, number>} internal normalized messages that only feed a computable (book_change)
 */

/**
 * Normalized tardis-dev messages, live. Yields data messages and `disconnect`s; on a fatal error yields
 * one `{type: 'end', reason: 'error', error}` and stops. If none of the requested data types is
 * available for the exchange, that `end` is the only message.
 * @param {TardisStreamOptions} options
 * @returns {AsyncIterable<any> & {stats: Record<string, any>, dataTypes: string[], feed: import('./feed-patch.js').FeedCounters, ledgerCounts: () => StreamLedgerCounts}}
 *   dataTypes: those streamed; feed: the patched feed's counters
 */
export function tardisStream ({
  exchange, symbols, dataTypes = ['trade'], bookDepth = 10, bookIntervalMs = 100, timeoutIntervalMS = 10000,
  maxEmptyConnections = 5, ignoreErrors = () => false, restUrl, label = 'tardis-realtime', recorder = null, log = silentLog
}) {
  if (typeof exchange !== 'string' || exchange === '') throw new Error(`${label}: an exchange is required`)
  if (!Array.isArray(symbols) || symbols.length === 0) throw new Error(`${label}: at least one symbol is required for ${exchange}`)
  const selection = selectDataTypes({ exchange, dataTypes, log, label })
  const feed = newFeedCounters()
  if (selection.error !== null) {
    const error = selection.error
    return {
      stats: { messages: 0 },
      dataTypes: [],
      feed,
      ledgerCounts: () => ({ raw: { received: 0 }, normalized: {}, internal: {} }),
      [Symbol.asyncIterator]: async function * () { yield { type: 'end', reason: 'error', error, exchange } }
    }
  }
  const streamed = selection.available
  const { normalizers, computables, internalTypes } = normalizersFor(streamed, { bookDepth, bookIntervalMs })
  const stats = {
    messages: 0,
    disconnects: 0,
    reconnects: 0,
    connectionErrors: 0,
    ignoredErrors: 0,
    /** @type {Record<string, number>} normalized messages that only feed a computable */
    internal: {},
    /** @type {Record<string, number>} messages yielded per type (disconnects included) */
    normalized: {},
    /** the patched feed's counters: raw messages received, failed manual snapshots */
    feed,
    /** wall time (ms) of the last disconnect yielded (0: none); the connection is down while no raw
     * message came after it (feed.lastMessageMs) */
    lastDisconnectMs: 0
  }
  /** @param {string} type */
  const yielded = (type) => { stats.normalized[type] = (stats.normalized[type] ?? 0) + 1 }
  let dataSeen = false
  let emptyConnections = 0
  /** @type {Error|null} */
  let fatal = null

  const onError = (err) => {
    if (ignoreErrors()) {
      stats.ignoredErrors++
      return
    }
    stats.connectionErrors++
    if (!dataSeen) {
      if (fatal === null) {
        fatal = new Error(`${label}: cannot stream ${exchange} from ${wssUrlOf(exchange)}: ${describeError(err)} (no connection has succeeded yet, so this is not retried)`)
      }
    } else {
      log(`${label}: ${exchange} connection error, tardis-dev reconnects with back-off: ${describeError(err)}`)
    }
  }

  async function * run () {
    const record = recorder === null ? undefined : (/** @type {any} */ msg) => recorder.write(exchange, msg)
    const undoPatch = installFeedPatch(exchange, { counters: feed, restUrl, record })
    try {
      yield * messagesOf(streamNormalized({ exchange, symbols, withDisconnectMessages: true, timeoutIntervalMS, onError }, ...normalizers))
    } finally {
      feed.released = true
      undoPatch()
    }
  }

  /** @param {AsyncIterable<any>} stream */
  async function * messagesOf (stream) {
    const messages = computables.length > 0 ? compute(stream, ...computables) : stream
    for await (const m of messages) {
      if (m.type === 'disconnect') {
        if (fatal !== null) {
          yield { type: 'end', reason: 'error', error: fatal.message, exchange }
          return
        }
        stats.disconnects++
        stats.lastDisconnectMs = Date.now()
        if (!dataSeen && ++emptyConnections >= maxEmptyConnections && !ignoreErrors()) {
          yield {
            type: 'end',
            reason: 'error',
            exchange,
            error: `${label}: ${exchange} at ${wssUrlOf(exchange)} closed the connection ${emptyConnections} times before sending any data; giving up`
          }
          return
        }
        if (dataSeen && !ignoreErrors()) stats.reconnects++
        yielded('disconnect')
        yield m
        continue
      }
      dataSeen = true
      if (internalTypes.has(m.type)) {
        stats.internal[m.type] = (stats.internal[m.type] ?? 0) + 1
        continue
      }
      stats.messages++
      yielded(m.type)
      yield m
    }
  }

  return {
    stats,
    dataTypes: streamed,
    unavailable: selection.unavailable,
    feed,
    ledgerCounts: () => ({ raw: { received: feed.received }, normalized: { ...stats.normalized }, internal: { ...stats.internal } }),
    [Symbol.asyncIterator]: () => run()
  }
}
