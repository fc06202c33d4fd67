// Binance combined-stream protocol as the replay server plays it: answers SUBSCRIBE / UNSUBSCRIBE /
// LIST_SUBSCRIPTIONS like wss://stream.binance.com/stream and sends only `{"stream", "data"}` frames of
// subscribed streams. The unwrapped REST depth snapshot line of the recordings is sent the way
// tardis-dev expects its manual snapshots: {"stream":"<sym>@depthSnapshot","generated":true,"data":...}.
// tardis-dev's book data needs that snapshot (it fetches it over REST ~1 s after connecting): before a
// replay with book data, scanRecording() finds which symbols the recording has one for.
import { parseClientJson } from './client-json.js'

export const exchanges = ['binance', 'binance-us', 'binance-jersey', 'binance-futures', 'binance-delivery']

/** URL path of the combined stream endpoint */
export const path = '/stream'

/**
 * @typedef {import('./index.js').ProtocolSession} ProtocolSession
 */

/**
 * @typedef {object} BinanceInventory what scanRecording found
 * @property {Record<string, string>} snapshots symbol (lower case) -> `<file>:<line>` of its first depth snapshot
 *
 * @typedef {{lastDepthSymbol: string|null, snapshots: Map<string, string>, inventory: BinanceInventory|null}} BinanceState
 */

/**
 * State shared by every connection of one replay (what the recording told us so far).
 * @param {BinanceInventory|null} [inventory] from scanRecording, if the recording was scanned
 * @returns {BinanceState}
 */
export const createRecordingState = (inventory = null) => ({ lastDepthSymbol: null, snapshots: new Map(), inventory })

/** Data types whose tardis-dev feed needs something besides the subscribed streams: scanRecording() says if the recording has it. */
export const scannedTypes = ['book_snapshot']

const STREAM_KEY = '{"stream":"'
const SNAPSHOT_SUFFIX = '@depthSnapshot'

/** The lines scanRecording looks at: depth updates and snapshots (every other line it skips). */
export const scanLine = (text) => text.includes('@depth') || text.includes('"lastUpdateId"')

/**
 * Which symbols the recording has a depth snapshot for (string checks on the lines, no JSON.parse), the
 * way route() attributes them: an unwrapped `{"lastUpdateId":...}` line belongs to the symbol of the last
 * depth update before it (or to the only requested symbol when none came before); a recorded
 * `<sym>@depthSnapshot` stream line to its symbol. Stops reading once every requested symbol has one.
 * @param {AsyncIterable<{file: string, line: number, text: string}>} lines
 * @param {{symbols: string[], dataTypes: string[]}} request
 * @returns {Promise<{unavailable: {type: string, reason: string}[], inventory: BinanceInventory}>}
 */
export async function scanRecording (lines, { symbols, dataTypes }) {
  /** @type {BinanceInventory} */
  const inventory = { snapshots: {} }
  if (!dataTypes.some((t) => scannedTypes.includes(t))) return { unavailable: [], inventory }
  const wanted = new Set(symbols.map((s) => s.toLowerCase()))
  const only = wanted.size === 1 ? [...wanted][0] : null
  let missing = wanted.size
  let lastDepthSymbol = null
  const found = (symbol, where) => {
    if (symbol === null || !wanted.has(symbol) || inventory.snapshots[symbol] !== undefined) return
    inventory.snapshots[symbol] = where
    missing--
  }
  for await (const { file, line, text } of lines) {
    const at = text.indexOf(STREAM_KEY)
    if (at !== -1) {
      const from = at + STREAM_KEY.length
      const depth = text.indexOf('@depth', from)
      if (depth === -1 || depth > text.indexOf('"', from)) continue
      lastDepthSymbol = text.slice(from, depth)
      if (text.startsWith('@depthSnapshot"', depth)) found(lastDepthSymbol, `${file}:${line}`)
    } else if (text.includes('"lastUpdateId"')) {
      found(lastDepthSymbol ?? only, `${file}:${line}`)
    }
    if (missing === 0) break
  }
  const absent = [...wanted].filter((s) => inventory.snapshots[s] === undefined)
  const unavailable = absent.length === 0 || !dataTypes.includes('book_snapshot')
    ? []
    : [{ type: 'book_snapshot', reason: `no depth snapshot of ${absent.join(', ')}` }]
  return { unavailable, inventory }
}

/**
 * One client connection.
 * @param {BinanceState} shared
 * @returns {ProtocolSession}
 */
export function createSession (shared) {
  /** @type {Set<string>} */
  const subscriptions = new Set()
  return {
    get subscribed () { return subscriptions.size > 0 },
    subscriptions,
    onClientMessage (text) {
      const { msg, invalid } = parseClientJson(text, JSON.stringify({ error: { code: 3, msg: 'Invalid JSON' } }))
      if (invalid !== null) return invalid
      const id = msg?.id ?? null
      const params = Array.isArray(msg?.params) ? msg.params.map(String) : []
      switch (msg?.method) {
        case 'SUBSCRIBE':
          for (const p of params) subscriptions.add(p)
          return { replies: [JSON.stringify({ result: null, id })] }
        case 'UNSUBSCRIBE':
          for (const p of params) subscriptions.delete(p)
          return { replies: [JSON.stringify({ result: null, id })] }
        case 'LIST_SUBSCRIPTIONS':
          return { replies: [JSON.stringify({ result: [...subscriptions], id })] }
        default:
          return {
            replies: [JSON.stringify({ error: { code: 2, msg: `Invalid request: unknown method ${msg?.method}` }, id })],
            problem: `unknown method ${JSON.stringify(msg?.method)}`
          }
      }
    },
    route (rec) {
      const data = rec.data
      if (typeof data.stream === 'string' && data.stream.endsWith(SNAPSHOT_SUFFIX) && data.data?.lastUpdateId !== undefined) {
        // a manual snapshot as tardis-dev yielded it (our own recordings, --record-dir): its symbol
        // is in the stream name; served like an unwrapped REST snapshot line of that symbol
        const symbol = data.stream.slice(0, -SNAPSHOT_SUFFIX.length)
        const body = JSON.stringify(data.data)
        const payload = data.data.T === undefined ? `{"T":${Math.round(rec.tsUs)},${body.slice(1)}` : body
        shared.snapshots.set(symbol, payload)
        const wanted = [...subscriptions].some((s) => s.startsWith(`${symbol}@depth`))
        return wanted ? `{"stream":"${symbol}@depthSnapshot","generated":true,"data":${payload}}` : null
      }
      if (typeof data.stream === 'string') {
        const at = data.stream.indexOf('@depth')
        if (at > 0) shared.lastDepthSymbol = data.stream.slice(0, at)
        return subscriptions.has(data.stream) ? rec.raw : null
      }
      if (data.lastUpdateId !== undefined && Array.isArray(data.bids)) {
        // REST depth snapshot recorded unwrapped: which symbol? the subscribed depth stream of the
        // symbol the recording showed last (the line sits among that symbol's depth updates)
        const depthSubs = [...subscriptions].filter((s) => s.includes('@depth'))
        const symbols = [...new Set(depthSubs.map((s) => s.slice(0, s.indexOf('@'))))]
        const symbol = shared.lastDepthSymbol === null && symbols.length === 1
          ? symbols[0]
          : symbols.find((s) => s === shared.lastDepthSymbol)
        // Spot REST snapshots have no `T`, so tardis-dev stamps the snapshot with the time it arrives:
        // in a replay that is today, and a book_snapshot interval (e.g. 100 ms) would then never see
        // a later bucket. `T` (µs) = when the recorder received it keeps the replay on recorded time.
        const payload = data.T === undefined ? `{"T":${Math.round(rec.tsUs)},${rec.raw.slice(1)}` : rec.raw
        const recordedFor = shared.lastDepthSymbol ?? symbol
        if (recordedFor != null) shared.snapshots.set(recordedFor, payload)
        if (symbol === undefined) return null
        return `{"stream":"${symbol}@depthSnapshot","generated":true,"data":${payload}}`
      }
      return null
    }
  }
}

/**
 * REST calls tardis-dev makes besides the WebSocket (its feed's httpURL is pointed at the replay server,
 * see sources/replay.js): GET /exchangeInfo and /depth?symbol=X&limit=1000 for book data (manual
 * snapshots), /openInterest?symbol=X every 3 s for binance-futures/-delivery derivative_ticker.
 * Served from the recording where it has the answer; otherwise 404 (tardis-dev then logs it at debug
 * level for openInterest, or drops and reopens the connection for depth). A depth snapshot the
 * recording has further on (scanRecording) is `pending`: the server asks again as the replay goes on.
 * @param {string} endpoint path after the REST base, e.g. '/depth'
 * @param {URLSearchParams} query
 * @param {BinanceState} shared
 * @returns {{status: number, headers?: Record<string, string>, body: string, pending?: boolean}}
 */
export function rest (endpoint, query, shared) {
  const weight = { 'x-mbx-used-weight-1m': '1', 'content-type': 'application/json' }
  switch (endpoint) {
    case '/exchangeInfo':
      return { status: 200, headers: weight, body: JSON.stringify({ rateLimits: [{ rateLimitType: 'REQUEST_WEIGHT', interval: 'MINUTE', intervalNum: 1, limit: 6000 }] }) }
    case '/depth': {
      const symbol = String(query.get('symbol') ?? '').toLowerCase()
      const raw = shared.snapshots.get(symbol)
      if (raw !== undefined) return { status: 200, headers: weight, body: raw }
      const later = shared.inventory?.snapshots[symbol]
      if (later !== undefined) {
        return { status: 404, pending: true, body: JSON.stringify({ code: -1121, msg: `replay: the depth snapshot of ${symbol} (${later}) was not reached in time` }) }
      }
      return { status: 404, body: JSON.stringify({ code: -1121, msg: `replay: the recording has no depth snapshot of ${symbol} (yet)` }) }
    }
    default:
      return { status: 404, body: JSON.stringify({ code: -1, msg: `replay: ${endpoint} is not in the recording` }) }
  }
}
