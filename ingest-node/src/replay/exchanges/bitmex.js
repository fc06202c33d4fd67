// BitMEX realtime API (https://www.bitmex.com/app/wsAPI) as the replay server plays it to tardis-dev's
// BitmexRealTimeFeed: a welcome message on connect, `{"op":"subscribe","args":["<table>:<symbol>", ...]}`
// answered with one `{"success":true,"subscribe":"<arg>","request":...}` per arg (tardis-dev sends one
// subscribe per channel and batch of 10 symbols; it pings with WebSocket ping frames, which `ws` answers),
// and only the rows of recorded `{"table","action","data"}` messages whose table:symbol is subscribed.
// No REST calls. The recorded welcome and subscribe acks (the recorder's own) are not sent.
//
// BitMEX sends a `partial` (the table's current rows) after every subscribe. The recording holds one
// per table and symbol, at the start; so that a reconnect (cutAfter) gets one too, the tables that have
// keys (orderBookL2: symbol,id,side; instrument: symbol) are kept as BitMEX keeps them (partial,
// insert, update, delete by key) and a fresh partial built from them follows the subscribe ack. Without
// it tardis-dev's book mapper drops every update after a reconnect (it knows no price of any level id).
import { parseClientJson } from './client-json.js'

export const exchanges = ['bitmex']

/** URL path of the realtime endpoint (wss://ws.bitmex.com/realtime) */
export const path = '/realtime'

/**
 * @typedef {{keys: string[], types: any, rows: Map<string, Record<string, any>>}} KeptTable
 * @typedef {{tables: Map<string, KeptTable>}} BitmexState tables by `<table>:<symbol>`
 */

/** @returns {BitmexState} */
export const createRecordingState = () => ({ tables: new Map() })

/** @param {KeptTable} t @param {Record<string, any>} row */
const rowKey = (t, row) => t.keys.map((k) => row[k]).join('\u0000')

/**
 * Applies one recorded table message to the kept tables.
 * @param {BitmexState} shared
 * @param {any} msg
 */
function keep (shared, msg) {
  if (msg.action === 'partial') {
    if (!Array.isArray(msg.keys) || msg.keys.length === 0) return // trade, quote, liquidation: nothing to keep
    const symbols = new Set(msg.data.map((r) => r.symbol))
    if (msg.filter?.symbol !== undefined) symbols.add(msg.filter.symbol)
    for (const s of symbols) shared.tables.set(`${msg.table}:${s}`, { keys: msg.keys, types: msg.types, rows: new Map() })
    for (const row of msg.data) {
      const t = shared.tables.get(`${msg.table}:${row.symbol}`)
      t.rows.set(rowKey(t, row), { ...row })
    }
    return
  }
  for (const row of msg.data) {
    const t = shared.tables.get(`${msg.table}:${row.symbol}`)
    if (t === undefined) continue
    const k = rowKey(t, row)
    if (msg.action === 'insert') t.rows.set(k, { ...row })
    else if (msg.action === 'update') Object.assign(t.rows.get(k) ?? {}, row)
    else if (msg.action === 'delete') t.rows.delete(k)
  }
}

/**
 * The partial BitMEX would send now to a new subscriber of `<table>:<symbol>`, or null.
 * @param {BitmexState} shared @param {string} arg
 */
function partialFor (shared, arg) {
  const t = shared.tables.get(arg)
  if (t === undefined) return null
  const [table, symbol] = arg.split(':')
  return JSON.stringify({ table, action: 'partial', keys: t.keys, types: t.types, filter: { symbol }, data: [...t.rows.values()] })
}

/**
 * One client connection.
 * @param {BitmexState} shared
 * @returns {import('./index.js').ProtocolSession}
 */
export function createSession (shared) {
  /** @type {Set<string>} `<table>:<symbol>`, or `<table>` for every symbol */
  const subscriptions = new Set()
  const wanted = (table, symbol) => subscriptions.has(table) || subscriptions.has(`${table}:${symbol}`)
  const error = (request, text) => JSON.stringify({ status: 400, error: text, meta: {}, request })
  return {
    get subscribed () { return subscriptions.size > 0 },
    subscriptions,
    onOpen () {
      return [JSON.stringify({ info: 'Welcome to the BitMEX Realtime API.', version: 'replay', timestamp: new Date().toISOString(), docs: 'https://www.bitmex.com/app/wsAPI', limit: { remaining: 39 } })]
    },
    onClientMessage (text) {
      if (text === 'ping') return { replies: ['pong'] }
      const { msg, invalid } = parseClientJson(text, error(text, 'Unrecognized request. See the docs or send \'help\' for more details.'))
      if (invalid !== null) return invalid
      const args = Array.isArray(msg?.args) ? msg.args.map(String) : []
      const replies = []
      switch (msg?.op) {
        case 'subscribe':
          for (const a of args) {
            subscriptions.add(a)
            replies.push(JSON.stringify({ success: true, subscribe: a, request: msg }))
            const partial = partialFor(shared, a)
            if (partial !== null) replies.push(partial)
          }
          return { replies }
        case 'unsubscribe':
          for (const a of args) {
            subscriptions.delete(a)
            replies.push(JSON.stringify({ success: true, unsubscribe: a, request: msg }))
          }
          return { replies }
        default:
          return { replies: [error(msg, 'Unknown or expired command.')], problem: `unknown op ${JSON.stringify(msg?.op)}` }
      }
    },
    route (rec) {
      const msg = rec.data
      if (typeof msg.table !== 'string' || !Array.isArray(msg.data)) return null // welcome, recorded acks
      keep(shared, msg)
      if (msg.data.length === 0) {
        // an empty partial names its symbol only in `filter`
        return msg.filter?.symbol !== undefined && wanted(msg.table, msg.filter.symbol) ? rec.raw : null
      }
      const rows = msg.data.filter((r) => wanted(msg.table, r.symbol))
      if (rows.length === msg.data.length) return rec.raw
      if (rows.length === 0) return null
      return JSON.stringify({ ...msg, data: rows })
    }
  }
}
