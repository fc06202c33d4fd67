// Deribit JSON-RPC WebSocket API (https://docs.deribit.com/#subscriptions) as the replay server plays it
// to tardis-dev's DeribitRealTimeDataFeed: it sends `public/set_heartbeat` (answered "ok"), then one
// `public/subscribe` with every channel (answered with the channel list), and `public/test` when asked
// (answered too; the replay sends no heartbeats). Then only recorded `subscription` notifications of
// subscribed channels are sent. No REST calls. The recorder's own subscribe answer is not sent.
//
// Channel names: without API credentials tardis-dev subscribes `<channel>.<instrument>.100ms` (Deribit
// serves `.raw` only to authorized connections); the capture was made on `.raw`. The messages of both
// have the same format (100ms only aggregates book changes and samples the ticker), so a recorded
// `book.X.raw` is served to a `book.X.100ms` subscription. Its `params.channel` is rewritten to the
// subscribed name, as Deribit names the subscription it serves; tardis-dev's mappers only look at the
// channel prefix (`book`, `ticker`, `trades`), so this is faithfulness, not a need of the mapper.
//
// Deribit sends a book `snapshot` after every subscribe; the recording holds one per instrument at the
// start. So that a reconnect (cutAfter) gets one too, the book is kept from the recorded snapshots and
// changes, and a fresh snapshot notification follows the subscribe answer.
import { parseClientJson } from './client-json.js'

export const exchanges = ['deribit']

/** URL path of the API (wss://streams.deribit.com/ws/api/v2) */
export const path = '/ws/api/v2'

/**
 * @typedef {{bids: Map<number, number>, asks: Map<number, number>, timestamp: number, changeId: number}} Book
 * @typedef {{books: Map<string, Book>}} DeribitState
 */

/** @returns {DeribitState} */
export const createRecordingState = () => ({ books: new Map() })

/**
 * `book.BTC-PERPETUAL.raw` / `.100ms` -> `book.BTC-PERPETUAL`; other channels (grouped books, ...) as they are.
 * @param {string} channel
 */
export function channelBase (channel) {
  const parts = channel.split('.')
  if (parts.length === 3 && (parts[2] === 'raw' || /^\d+ms$/.test(parts[2]))) return `${parts[0]}.${parts[1]}`
  return channel
}

/** @param {Map<number, number>} levels @param {any[][]} changes [action, price, amount] */
function apply (levels, changes) {
  for (const [action, price, amount] of changes) {
    if (action === 'delete') levels.delete(price)
    else levels.set(price, amount)
  }
}

/** @param {DeribitState} shared @param {any} data a book notification's data */
function keep (shared, data) {
  let book = shared.books.get(data.instrument_name)
  if (data.type === 'snapshot' || data.prev_change_id === undefined) {
    book = { bids: new Map(), asks: new Map(), timestamp: 0, changeId: 0 }
    shared.books.set(data.instrument_name, book)
  }
  if (book === undefined) return
  apply(book.bids, data.bids ?? [])
  apply(book.asks, data.asks ?? [])
  book.timestamp = data.timestamp
  book.changeId = data.change_id
}

/** @param {Map<number, number>} levels @param {1|-1} dir */
const sorted = (levels, dir) => [...levels].sort((a, b) => dir * (a[0] - b[0])).map(([p, a]) => ['new', p, a])

/** @param {DeribitState} shared @param {string} channel the subscribed book channel */
function snapshotFor (shared, channel) {
  const instrument = channel.split('.')[1]
  const book = shared.books.get(instrument)
  if (book === undefined) return null
  const data = { type: 'snapshot', timestamp: book.timestamp, instrument_name: instrument, change_id: book.changeId, bids: sorted(book.bids, -1), asks: sorted(book.asks, 1) }
  return JSON.stringify({ jsonrpc: '2.0', method: 'subscription', params: { channel, data } })
}

/**
 * One client connection.
 * @param {DeribitState} shared
 * @returns {import('./index.js').ProtocolSession}
 */
export function createSession (shared) {
  /** @type {Map<string, string>} channelBase -> the channel name as subscribed */
  const subscriptions = new Map()
  const result = (id, value) => JSON.stringify({ jsonrpc: '2.0', id, result: value })
  return {
    get subscribed () { return subscriptions.size > 0 },
    subscriptions,
    onClientMessage (text) {
      const { msg, invalid } = parseClientJson(text, JSON.stringify({ jsonrpc: '2.0', error: { code: -32700, message: 'parse_error' } }))
      if (invalid !== null) return invalid
      const id = msg?.id ?? null
      const channels = Array.isArray(msg?.params?.channels) ? msg.params.channels.map(String) : []
      switch (msg?.method) {
        case 'public/subscribe':
        case 'private/subscribe': {
          const snapshots = []
          for (const c of channels) {
            subscriptions.set(channelBase(c), c)
            const s = c.startsWith('book.') ? snapshotFor(shared, c) : null
            if (s !== null) snapshots.push(s)
          }
          return { replies: [result(id, channels), ...snapshots] }
        }
        case 'public/unsubscribe':
        case 'private/unsubscribe':
          for (const c of channels) subscriptions.delete(channelBase(c))
          return { replies: [result(id, channels)] }
        case 'public/unsubscribe_all':
          subscriptions.clear()
          return { replies: [result(id, 'ok')] }
        case 'public/set_heartbeat':
          return { replies: [result(id, 'ok')] }
        case 'public/test':
          return { replies: [result(id, { version: 'replay' })] }
        default:
          return {
            replies: [JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } })],
            problem: `unknown method ${JSON.stringify(msg?.method)}`
          }
      }
    },
    route (rec) {
      const msg = rec.data
      const channel = msg.params?.channel
      if (msg.method !== 'subscription' || typeof channel !== 'string') return null // recorded answers, heartbeats
      if (channel.startsWith('book.') && msg.params.data?.instrument_name !== undefined) keep(shared, msg.params.data)
      const subscribedAs = subscriptions.get(channelBase(channel))
      if (subscribedAs === undefined) return null
      if (subscribedAs === channel) return rec.raw
      const recorded = `"channel":${JSON.stringify(channel)}`
      if (rec.raw.includes(recorded)) return rec.raw.replace(recorded, `"channel":${JSON.stringify(subscribedAs)}`)
      return JSON.stringify({ ...msg, params: { ...msg.params, channel: subscribedAs } })
    }
  }
}
