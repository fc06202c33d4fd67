// Binance combined-stream protocol as the replay server plays it: answers SUBSCRIBE / UNSUBSCRIBE /
// LIST_SUBSCRIPTIONS like wss://stream.binance.com/stream and sends only `{"stream", "data"}` frames of
// subscribed streams. The unwrapped REST depth snapshot line of the recordings is sent the way
// tardis-dev expects its manual snapshots: {"stream":"<sym>@depthSnapshot","generated":true,"data":...}.
import { parseClientJson } from './client-json.js'

export const exchanges = ['binance', 'binance-us', 'binance-jersey', 'binance-futures', 'binance-delivery']

/** URL path of the combined stream endpoint */
export const path = '/stream'

/**
 * @typedef {import('./index.js').ProtocolSession} ProtocolSession
 */

/**
 * State shared by every connection of one replay (what the recording told us so far).
 * @returns {{lastDepthSymbol: string|null, snapshots: Map<string, string>}}
 */
export const createRecordingState = () => ({ lastDepthSymbol: null, snapshots: new Map() })

/**
 * One client connection.
 * @param {{lastDepthSymbol: string|null, snapshots: Map<string, string>}} shared
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
        const symbol = symbols.length === 1 ? symbols[0] : symbols.find((s) => s === shared.lastDepthSymbol)
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
 * level for openInterest, or drops and reopens the connection for depth).
 * @param {string} endpoint path after the REST base, e.g. '/depth'
 * @param {URLSearchParams} query
 * @param {{snapshots: Map<string, string>}} shared
 * @returns {{status: number, headers?: Record<string, string>, body: string}}
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
      return { status: 404, body: JSON.stringify({ code: -1121, msg: `replay: the recording has no depth snapshot of ${symbol} (yet)` }) }
    }
    default:
      return { status: 404, body: JSON.stringify({ code: -1, msg: `replay: ${endpoint} is not in the recording` }) }
  }
}
