// Several exchanges in one session: one source per exchange (its own tardis-dev stream, and for a replay
// its own replay server) merged into one stream, as tardis-dev's combine() does (dist/combine.js): a
// replay by exchange time, real time as the messages come. tardis-dev's own combine() does not fit: its
// historical mode orders by `localTimestamp`, which in our replays is the arrival time (the replay goes
// through tardis-dev's real-time client), and its real-time mode is chosen by a flag our sources lack.
//
// Each source is read by its own pump into a queue, so that a source waiting for the merge never stops
// reading its socket (a replay server takes a client that stops reading for dead). A queue that reaches
// `highWater` messages asks its source to hold (a replay server stops sending, `hold(true)`) or, for a
// source that cannot, stops being read until it is back under `lowWater`.
import { toUs } from '../convert.js'
import { silentLog } from '../log.js'

/** @typedef {'exchange-time'|'arrival'} MergeOrder */

/** A FIFO of the messages one source yielded and the merge has not taken yet. */
class Queue {
  constructor () {
    /** @type {{m: any, key: number, seq: number}[]} */
    this.items = []
    this.head = 0
  }

  get length () { return this.items.length - this.head }
  peek () { return this.items[this.head] }
  /** @param {{m: any, key: number, seq: number}} item */
  push (item) { this.items.push(item) }
  shift () {
    const item = this.items[this.head++]
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }
}

/**
 * The exchange time of a message in µs, the key of the exchange-time merge; null when it has none: a
 * disconnect, or a message whose `timestamp` is its `localTimestamp` (tardis-dev's fallback when the
 * exchange gives no time, e.g. BitMEX book rows).
 * @param {any} m
 * @returns {number|null}
 */
export function exchangeTimeUs (m) {
  if (m.type === 'disconnect') return null
  const t = m.timestampUs !== undefined ? m.timestampUs : toUs(m.timestamp)
  if (!Number.isFinite(t)) return null
  const local = m.localTimestampUs !== undefined ? m.localTimestampUs : toUs(m.localTimestamp)
  return t === local ? null : t
}

/**
 * @typedef {object} MergeStats
 * @property {number[]} yielded messages taken from each source
 * @property {number[]} maxQueued the longest each source's queue was
 * @property {number[]} holds times each source was asked to hold (or, without hold(), not read)
 */

/**
 * Merges the sources' messages into one stream. `exchange-time`: whenever every source that is not over
 * has a message waiting, the one with the smallest exchange time goes first (ties: the source listed
 * first); a message without one (exchangeTimeUs) takes its source's previous time, so it keeps its place
 * right after that source's previous message. `arrival`: in the order the pumps received them.
 * Each source's own order is kept. A source's `end` is not passed on: when every source is over, one
 * `end` says `replay_finished` if all of them did, else `source_closed`; an `end` with reason `error` ends
 * the merged stream at once (after the messages already queued, in merge order), its error prefixed with
 * the source's label.
 * @param {(AsyncIterable<any> & {hold?: (on: boolean) => void})[]} sources
 * @param {{order: MergeOrder, labels?: string[], highWater?: number, lowWater?: number, stats?: MergeStats, log?: import('../log.js').Log}} options
 * @returns {AsyncGenerator<any>}
 */
export async function * mergeSources (sources, { order, labels = sources.map((_, i) => `source ${i}`), highWater = 10000, lowWater = Math.floor(highWater / 2), stats, log = silentLog }) {
  if (order !== 'exchange-time' && order !== 'arrival') throw new Error(`merge: order must be 'exchange-time' or 'arrival', got ${JSON.stringify(order)}`)
  const n = sources.length
  const its = sources.map((s) => s[Symbol.asyncIterator]())
  const queues = sources.map(() => new Queue())
  /** @type {({reason: string, error: string|null}|null)[]} why each source is over, null while it is not */
  const ends = sources.map(() => null)
  const st = stats ?? { yielded: [], maxQueued: [], holds: [] }
  for (let i = 0; i < n; i++) { st.yielded[i] = 0; st.maxQueued[i] = 0; st.holds[i] = 0 }
  const held = sources.map(() => false)
  /** @type {((() => void)|null)[]} a pump waiting for its queue to shrink */
  const resume = sources.map(() => null)
  let wake = null
  const notify = () => { if (wake !== null) { const w = wake; wake = null; w() } }
  let arrivals = 0
  let stopped = false

  /** @param {number} i */
  const pump = async (i) => {
    const canHold = typeof sources[i].hold === 'function'
    let last = -Infinity
    try {
      while (!stopped) {
        const r = await its[i].next()
        if (stopped) return // the merge is over: in no count, as a message still in tardis-dev's buffers
        if (r.done) {
          log(`${labels[i]}: its source ended without an end message`)
          ends[i] = { reason: 'source_closed', error: null }
          return
        }
        for (const m of Array.isArray(r.value) ? r.value : [r.value]) {
          if (m?.type === 'end') {
            ends[i] = { reason: m.reason ?? 'source_closed', error: m.error ?? null }
            // as the pipeline does after a source's end: let it clean up (a replay closes its server)
            Promise.resolve().then(() => its[i].return?.()).catch(() => {})
            return
          }
          const t = order === 'exchange-time' ? exchangeTimeUs(m) : null
          if (t !== null) last = t
          queues[i].push({ m, key: t ?? last, seq: arrivals++ })
        }
        const q = queues[i].length
        if (q > st.maxQueued[i]) st.maxQueued[i] = q
        notify()
        if (q >= highWater && !held[i]) {
          held[i] = true
          st.holds[i]++
          if (canHold) sources[i].hold?.(true)
          else await new Promise((resolve) => { resume[i] = () => resolve(undefined) })
        }
      }
    } catch (e) {
      if (!stopped) ends[i] = { reason: 'error', error: e?.message ?? String(e) }
    } finally {
      notify()
    }
  }

  /** @param {number} i */
  const release = (i) => {
    held[i] = false
    if (resume[i] !== null) { const r = resume[i]; resume[i] = null; r() } else sources[i].hold?.(false)
  }

  /**
   * The source whose message goes next, or -1 if the merge must wait. `drain`: the sources not over are
   * taken as over (an error ends the stream).
   * @param {boolean} drain
   */
  const pick = (drain) => {
    let best = -1
    for (let i = 0; i < n; i++) {
      const q = queues[i]
      if (q.length === 0) {
        if (order === 'exchange-time' && ends[i] === null && !drain) return -1
        continue
      }
      if (best === -1) { best = i; continue }
      const a = q.peek()
      const b = queues[best].peek()
      if (order === 'exchange-time' ? a.key < b.key : a.seq < b.seq) best = i
    }
    return best
  }

  for (let i = 0; i < n; i++) pump(i)
  try {
    for (;;) {
      const failed = ends.findIndex((e) => e?.reason === 'error')
      const i = pick(failed >= 0)
      if (i === -1) {
        if (failed >= 0) {
          yield { type: 'end', reason: 'error', error: `${labels[failed]}: ${ends[failed]?.error}` }
          return
        }
        if (ends.every((e) => e !== null)) {
          yield { type: 'end', reason: ends.every((e) => e?.reason === 'replay_finished') ? 'replay_finished' : 'source_closed', error: null }
          return
        }
        await new Promise((resolve) => { wake = () => resolve(undefined) })
        continue
      }
      const item = queues[i].shift()
      st.yielded[i]++
      if (held[i] && queues[i].length <= lowWater) release(i)
      yield item.m
    }
  } finally {
    stopped = true
    for (let i = 0; i < n; i++) {
      if (held[i]) release(i)
      // stops the sources (tardis-dev connections, replay servers); a pending next() may keep one busy, so do not wait
      Promise.resolve().then(() => its[i].return?.()).catch(() => {})
    }
  }
}

/**
 * @typedef {object} StreamSpec one exchange's part of the session
 * @property {string} exchange
 * @property {string[]} symbols
 * @property {string[]} dataTypes
 * @property {string[]} [files] replay: this exchange's recordings
 */

/**
 * @typedef {object} StreamInfo what one exchange streams (the start frame's `streams`)
 * @property {string} exchange
 * @property {string[]} symbols
 * @property {string[]} dataTypes those streamed
 * @property {{type: string, reason: string}[]} unavailable requested types left out, and why
 */

/** @param {Record<string, number>[]} counts @returns {Record<string, number>} */
function sumCounts (counts) {
  /** @type {Record<string, number>} */
  const out = {}
  for (const c of counts) for (const [k, v] of Object.entries(c ?? {})) out[k] = (out[k] ?? 0) + v
  return out
}

/**
 * One source per exchange (`open` with the shared options and the exchange's own), merged.
 * @param {object} o
 * @param {(options: any) => any} o.open the source of one exchange (openReplay, openTardisRealtime)
 * @param {StreamSpec[]} o.streams
 * @param {MergeOrder} o.order
 * @param {import('../log.js').Log} [o.log]
 * @param {number} [o.highWater]
 * @returns {AsyncIterable<any> & {stats: Record<string, any>, dataTypes: string[], unavailable: {type: string, reason: string}[],
 *   streams: StreamInfo[], ledgerCounts: () => {raw: Record<string, number>, normalized: Record<string, number>, internal: Record<string, number>}}}
 *   dataTypes: those streamed by any exchange; unavailable: per type left out somewhere, `<exchange>: <reason>`
 *   (joined with '; ' when several exchanges left it out); ledgerCounts: raw and internal summed over the
 *   exchanges, normalized = the messages the merged stream yielded
 */
export function openCombined ({ open, streams, order, log = silentLog, highWater, ...shared }) {
  const exchanges = streams.map((s) => s.exchange)
  if (new Set(exchanges).size !== exchanges.length) throw new Error(`an exchange is listed twice: ${exchanges.join(', ')}`)
  const parts = streams.map(({ exchange, symbols, dataTypes, files }) => {
    const prefixed = (line) => log(`${exchange}: ${line}`)
    const source = open({ ...shared, exchange, symbols, dataTypes, ...(files === undefined ? {} : { files }), log: prefixed })
    return { exchange, symbols, requested: dataTypes, source }
  })
  /** @type {StreamInfo[]} */
  const info = parts.map((p) => ({
    exchange: p.exchange,
    symbols: p.symbols,
    dataTypes: p.source.dataTypes ?? p.requested,
    unavailable: p.source.unavailable ?? []
  }))
  const dataTypes = [...new Set(info.flatMap((s) => s.dataTypes))]
  /** @type {Map<string, string[]>} */
  const why = new Map()
  for (const s of info) for (const u of s.unavailable) why.set(u.type, [...(why.get(u.type) ?? []), `${s.exchange}: ${u.reason}`])
  const unavailable = [...why].map(([type, reasons]) => ({ type, reason: reasons.join('; ') }))
  /** @type {Record<string, number>} */
  const normalized = {}
  /** @type {MergeStats} */
  const merge = { yielded: [], maxQueued: [], holds: [] }
  const stats = { merge: { order, ...merge }, exchanges: Object.fromEntries(parts.map((p) => [p.exchange, p.source.stats])) }
  const ledgerCounts = () => {
    const each = parts.map((p) => (typeof p.source.ledgerCounts === 'function' ? p.source.ledgerCounts() : {}))
    return { raw: sumCounts(each.map((c) => c.raw)), normalized: { ...normalized }, internal: sumCounts(each.map((c) => c.internal)) }
  }
  async function * run () {
    const merged = mergeSources(parts.map((p) => p.source), { order, labels: exchanges, highWater, stats: merge, log })
    for await (const m of merged) {
      if (m.type !== 'end') normalized[m.type] = (normalized[m.type] ?? 0) + 1
      yield m
    }
  }
  /** each exchange's own ledger counts (what its source yielded into the merge), by exchange (metrics) */
  const ledgerCountsByExchange = () => Object.fromEntries(parts.map((p) => [p.exchange, typeof p.source.ledgerCounts === 'function' ? p.source.ledgerCounts() : {}]))
  return { stats, dataTypes, unavailable, streams: info, ledgerCounts, ledgerCountsByExchange, [Symbol.asyncIterator]: () => run() }
}
