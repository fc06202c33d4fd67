// Coinbase Exchange WebSocket feed (https://docs.cdp.coinbase.com/exchange/docs/websocket-overview) as
// the replay server plays it to tardis-dev's CoinbaseRealTimeFeed: one
// `{"type":"subscribe","channels":[{"name","product_ids"}, ...]}` answered with a `subscriptions`
// message, then only recorded messages of subscribed channel and product. No REST calls, no pings
// beyond WebSocket ping frames. The recorder's own `subscriptions` messages are not sent.
//
// Channel names: tardis-dev subscribes `matches` for trades and, without API credentials,
// `level2_batch` for book data (Coinbase serves unbatched `level2` to authenticated connections only).
// The capture was made on `level2`; `level2_batch` carries the same `snapshot` / `l2update` messages
// (only batched every 50 ms), so the recorded ones are served for either name unchanged: tardis-dev's
// book mapper takes them by `type`, and no field names the channel. `matches` is recorded as is
// (`last_match` once per product at subscribe, then `match`).
//
// Coinbase sends a level2 `snapshot` after every subscribe; the recording holds one per product at the
// start. So that a reconnect (cutAfter) gets one too, the book is kept from the recorded snapshot and
// l2updates, and a fresh snapshot follows the `subscriptions` answer.
import { parseClientJson } from './client-json.js'

export const exchanges = ['coinbase']

/** URL path of the feed (wss://ws-feed.exchange.coinbase.com) */
export const path = '/'

/** recorded message type -> the channel that carries it */
const CHANNEL_OF_TYPE = { snapshot: 'level2', l2update: 'level2', match: 'matches', last_match: 'matches', ticker: 'ticker' }
/** subscribed channel name -> the recorded channel served for it */
const RECORDED_CHANNEL = { level2: 'level2', level2_batch: 'level2', matches: 'matches', ticker: 'ticker' }

/**
 * @typedef {{bids: Map<string, string>, asks: Map<string, string>}} Book price -> size, as strings
 * @typedef {{books: Map<string, Book>}} CoinbaseState
 */

/** @returns {CoinbaseState} */
export const createRecordingState = () => ({ books: new Map() })

/** @param {CoinbaseState} shared @param {any} msg */
function keep (shared, msg) {
  if (msg.type === 'snapshot') {
    shared.books.set(msg.product_id, { bids: new Map(msg.bids.map((l) => [l[0], l[1]])), asks: new Map(msg.asks.map((l) => [l[0], l[1]])) })
    return
  }
  const book = shared.books.get(msg.product_id)
  if (book === undefined || !Array.isArray(msg.changes)) return
  for (const [side, price, size] of msg.changes) {
    const levels = side === 'buy' ? book.bids : book.asks
    if (Number(size) === 0) levels.delete(price)
    else levels.set(price, size)
  }
}

/** @param {Map<string, string>} levels @param {1|-1} dir */
const sorted = (levels, dir) => [...levels].sort((a, b) => dir * (Number(a[0]) - Number(b[0])))

/** @param {CoinbaseState} shared @param {string} product */
function snapshotFor (shared, product) {
  const book = shared.books.get(product)
  if (book === undefined) return null
  return JSON.stringify({ type: 'snapshot', product_id: product, bids: sorted(book.bids, -1), asks: sorted(book.asks, 1) })
}

/**
 * One client connection.
 * @param {CoinbaseState} shared
 * @returns {import('./index.js').ProtocolSession}
 */
export function createSession (shared) {
  /** @type {Map<string, Set<string>>} subscribed channel name -> product ids */
  const subscriptions = new Map()
  const wanted = (channel, product) => {
    for (const [name, products] of subscriptions) {
      if (RECORDED_CHANNEL[name] === channel && products.has(product)) return true
    }
    return false
  }
  const listing = () => JSON.stringify({
    type: 'subscriptions',
    channels: [...subscriptions].filter(([, p]) => p.size > 0).map(([name, p]) => ({ name, product_ids: [...p] }))
  })
  const error = (message, reason) => JSON.stringify({ type: 'error', message, reason })
  /** @param {any} msg @returns {{name: string, products: string[]}[]} */
  const channelsOf = (msg) => (Array.isArray(msg.channels) ? msg.channels : []).map((c) => (
    typeof c === 'string'
      ? { name: c, products: (msg.product_ids ?? []).map(String) }
      : { name: String(c?.name), products: (c?.product_ids ?? msg.product_ids ?? []).map(String) }
  ))
  return {
    get subscribed () { return [...subscriptions.values()].some((p) => p.size > 0) },
    subscriptions,
    onClientMessage (text) {
      const { msg, invalid } = parseClientJson(text, error('Failed to subscribe', 'malformed JSON'))
      if (invalid !== null) return invalid
      const channels = channelsOf(msg ?? {})
      switch (msg?.type) {
        case 'subscribe': {
          const unknown = channels.find((c) => RECORDED_CHANNEL[c.name] === undefined)
          if (unknown !== undefined) {
            return { replies: [error('Failed to subscribe', `${unknown.name} is not a valid channel`)], problem: `channel ${JSON.stringify(unknown.name)} is not in the recording's protocol` }
          }
          const snapshots = []
          for (const c of channels) {
            if (!subscriptions.has(c.name)) subscriptions.set(c.name, new Set())
            for (const p of c.products) {
              subscriptions.get(c.name).add(p)
              const s = RECORDED_CHANNEL[c.name] === 'level2' ? snapshotFor(shared, p) : null
              if (s !== null) snapshots.push(s)
            }
          }
          return { replies: [listing(), ...snapshots] }
        }
        case 'unsubscribe':
          for (const c of channels) for (const p of c.products) subscriptions.get(c.name)?.delete(p)
          return { replies: [listing()] }
        default:
          return { replies: [error('Failed to subscribe', `${msg?.type} is not a valid type`)], problem: `unknown type ${JSON.stringify(msg?.type)}` }
      }
    },
    route (rec) {
      const msg = rec.data
      const channel = CHANNEL_OF_TYPE[msg.type]
      if (channel === undefined) return null // recorded subscriptions, heartbeats, ...
      if (channel === 'level2') keep(shared, msg)
      return wanted(channel, msg.product_id) ? rec.raw : null
    }
  }
}
