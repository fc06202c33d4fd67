// Normalized message (tardis-dev shape) -> one row of a wire frame. One writer per message type;
// each knows which frame type (and type-specific header) its rows go to.
import { writeI64 } from './wire/builder.js'

/**
 * @typedef {Record<string, any> & { type: string }} Message a tardis-dev normalized message, or one of
 *   our control messages ({type: 'end', reason, error}); fast path: numeric `timestampUs` / `localTimestampUs`
 * @typedef {import('./wire/builder.js').FrameBuilder} FrameBuilder
 */

/**
 * Microseconds since epoch of a tardis Date (ms Date plus its `μs` property, 0-999), an ISO string, or a number
 * (taken as µs). undefined/null/invalid -> NaN (missing).
 * @param {any} d
 */
export function toUs (d) {
  if (d == null) return NaN
  if (typeof d === 'number') return d
  if (d instanceof Date) {
    const ms = d.valueOf()
    return ms * 1000 + (d.μs ?? 0)
  }
  if (typeof d === 'string') return isoToUs(d)
  return NaN
}

const ISO_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$/

/**
 * ISO 8601 -> µs since epoch, keeping up to 6 fractional digits (Date.parse keeps 3). NaN if not ISO.
 * @param {string} s
 */
export function isoToUs (s) {
  const m = ISO_RE.exec(s)
  if (m === null) return NaN
  const baseMs = Date.parse(m[1] + (m[3] ?? 'Z'))
  if (Number.isNaN(baseMs)) return NaN
  const frac = m[2] ?? ''
  const us = frac === '' ? 0 : Number((frac + '000000').slice(0, 6))
  return baseMs * 1000 + us
}

/**
 * Date with tardis' extra `μs` property from µs since epoch.
 * @param {number} us
 */
export function dateFromUs (us) {
  const d = new Date(Math.floor(us / 1000))
  d.μs = us - Math.floor(us / 1000) * 1000
  return d
}

const SIDE = { unknown: 0, buy: 1, sell: 2 }
const OPTION_TYPE = { unknown: 0, call: 1, put: 2 }
const num = (v) => (typeof v === 'number' ? v : v == null ? NaN : Number(v))

/** @param {Message} m */
const tsUs = (m) => (m.timestampUs !== undefined ? m.timestampUs : toUs(m.timestamp))
/** @param {Message} m */
const localUs = (m) => (m.localTimestampUs !== undefined ? m.localTimestampUs : toUs(m.localTimestamp))

/**
 * Adds a row with the columns every data type starts with (sym, timestamp, local_timestamp).
 * @param {FrameBuilder} b @param {Message} m @returns {number} the row index
 */
function startRow (b, m) {
  const sym = b.symbolIndex(m.exchange, m.symbol)
  const i = b.addRow()
  b.cols.sym[i] = sym
  writeI64(b.i64.timestamp, i, tsUs(m))
  writeI64(b.i64.local_timestamp, i, localUs(m))
  return i
}

/** @param {FrameBuilder} b @param {Message} m */
function writeTradeLike (b, m) {
  const i = startRow(b, m)
  const c = b.cols
  c.price[i] = num(m.price)
  c.amount[i] = num(m.amount)
  c.side[i] = SIDE[m.side] ?? 0
  c.id[i] = m.id == null ? '' : String(m.id)
}

/**
 * @typedef {object} RowWriter
 * @property {string} frameType
 * @property {(m: Message) => string} key builder key (frame type, plus header fields that must be equal within a frame)
 * @property {(m: Message) => Record<string, any>} header type-specific header fields
 * @property {(b: FrameBuilder, m: Message) => void} write
 * @property {number} [index] position in `writers` (set below): lets the batcher count messages per
 *   type in a typed array on the hot path
 */

/** @type {Record<string, RowWriter>} */
export const writers = {
  trade: { frameType: 'trade', key: () => 'trade', header: () => ({}), write: writeTradeLike },
  liquidation: { frameType: 'liquidation', key: () => 'liquidation', header: () => ({}), write: writeTradeLike },
  book_snapshot: {
    frameType: 'book_snapshot',
    key: (m) => `book_snapshot:${m.depth}:${m.interval}`,
    header: (m) => ({ depth: m.depth, interval_ms: m.interval }),
    write (b, m) {
      const depth = b.extraHeader.depth
      const i = startRow(b, m)
      const c = b.cols
      const base = i * depth
      const bids = m.bids ?? []
      const asks = m.asks ?? []
      for (let j = 0; j < depth; j++) {
        const bid = bids[j]
        if (bid != null) { c.bid_price[base + j] = num(bid.price); c.bid_amount[base + j] = num(bid.amount) }
        const ask = asks[j]
        if (ask != null) { c.ask_price[base + j] = num(ask.price); c.ask_amount[base + j] = num(ask.amount) }
      }
    }
  },
  derivative_ticker: {
    frameType: 'derivative_ticker',
    key: () => 'derivative_ticker',
    header: () => ({}),
    write (b, m) {
      const i = startRow(b, m)
      const c = b.cols
      c.last_price[i] = num(m.lastPrice)
      c.open_interest[i] = num(m.openInterest)
      c.funding_rate[i] = num(m.fundingRate)
      writeI64(b.i64.funding_timestamp, i, toUs(m.fundingTimestamp))
      c.predicted_funding_rate[i] = num(m.predictedFundingRate)
      c.index_price[i] = num(m.indexPrice)
      c.mark_price[i] = num(m.markPrice)
    }
  },
  option_summary: {
    frameType: 'option_summary',
    key: () => 'option_summary',
    header: () => ({}),
    write (b, m) {
      const i = startRow(b, m)
      const c = b.cols
      c.option_type[i] = OPTION_TYPE[m.optionType] ?? 0
      c.strike_price[i] = num(m.strikePrice)
      writeI64(b.i64.expiration, i, toUs(m.expirationDate))
      c.best_bid_price[i] = num(m.bestBidPrice)
      c.best_bid_amount[i] = num(m.bestBidAmount)
      c.best_bid_iv[i] = num(m.bestBidIV)
      c.best_ask_price[i] = num(m.bestAskPrice)
      c.best_ask_amount[i] = num(m.bestAskAmount)
      c.best_ask_iv[i] = num(m.bestAskIV)
      c.last_price[i] = num(m.lastPrice)
      c.open_interest[i] = num(m.openInterest)
      c.mark_price[i] = num(m.markPrice)
      c.mark_iv[i] = num(m.markIV)
      c.delta[i] = num(m.delta)
      c.gamma[i] = num(m.gamma)
      c.vega[i] = num(m.vega)
      c.theta[i] = num(m.theta)
      c.rho[i] = num(m.rho)
      c.underlying_price[i] = num(m.underlyingPrice)
      c.underlying_index[i] = m.underlyingIndex == null ? '' : String(m.underlyingIndex)
    }
  }
}

/** Message types that have a writer, in `writers` order (`writers[WRITER_TYPES[i]].index === i`). */
export const WRITER_TYPES = Object.keys(writers)
WRITER_TYPES.forEach((type, i) => { writers[type].index = i })

/**
 * Writes the rows of one disconnect message: one per symbol of the dropped connection (the message's
 * `symbols`, else the subscribed symbols of its exchange), symbols upper-cased (exchange-native ids).
 * @param {FrameBuilder} b a 'disconnect' builder
 * @param {Message} m
 * @param {string[]} fallbackSymbols
 * @returns {number} rows written
 */
export function writeDisconnect (b, m, fallbackSymbols) {
  const symbols = Array.isArray(m.symbols) && m.symbols.length > 0 ? m.symbols : fallbackSymbols
  const local = localUs(m)
  for (const s of symbols) {
    const sym = b.symbolIndex(m.exchange, String(s).toUpperCase())
    const i = b.addRow()
    b.cols.sym[i] = sym
    writeI64(b.i64.local_timestamp, i, local)
  }
  return symbols.length
}
