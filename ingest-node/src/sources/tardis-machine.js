// tardis-machine (a server the user runs): ws://HOST:PORT/ws-stream-normalized?options=<url-encoded JSON>
// sends normalized messages as JSON with ISO timestamps (µs precision); they are turned into the
// tardis-dev message shape (Dates with a `μs` property) the row conversion takes.
import { WebSocket } from 'ws'
import { dateFromUs, isoToUs } from '../convert.js'
import { silentLog } from '../log.js'

const DATE_FIELDS = ['timestamp', 'localTimestamp', 'fundingTimestamp', 'expirationDate']

/**
 * @param {string[]} dataTypes ours
 * @param {{bookDepth: number, bookIntervalMs: number}} book
 */
export function machineDataTypes (dataTypes, { bookDepth, bookIntervalMs }) {
  return dataTypes.map((t) => (t === 'book_snapshot' ? `book_snapshot_${bookDepth}_${bookIntervalMs}ms` : t))
}

/**
 * One message of tardis-machine -> tardis-dev shape. Returns null for something that is not a message.
 * @param {string} text
 */
export function parseMachineMessage (text) {
  const m = JSON.parse(text)
  if (m === null || typeof m !== 'object' || typeof m.type !== 'string') return null
  for (const f of DATE_FIELDS) {
    if (typeof m[f] === 'string') {
      const us = isoToUs(m[f])
      if (Number.isFinite(us)) m[f] = dateFromUs(us)
    }
  }
  return m
}

/**
 * The stream URL: one options object for one exchange, an array of them for several (`streams`), which
 * tardis-machine merges as the messages come.
 * @param {{url?: string, exchange?: string, symbols?: string[], dataTypes?: string[],
 *   streams?: import('./combine.js').StreamSpec[], bookDepth?: number, bookIntervalMs?: number, timeoutIntervalMS?: number}} o
 */
export function machineUrl ({ url = 'ws://localhost:8001', exchange, symbols, dataTypes = ['trade'], streams, bookDepth = 10, bookIntervalMs = 100, timeoutIntervalMS }) {
  /** @param {{exchange?: string, symbols?: string[], dataTypes: string[]}} s */
  const optionsOf = (s) => {
    const o = { exchange: s.exchange, symbols: s.symbols, dataTypes: machineDataTypes(s.dataTypes, { bookDepth, bookIntervalMs }), withDisconnectMessages: true }
    if (timeoutIntervalMS !== undefined) o.timeoutIntervalMS = timeoutIntervalMS
    return o
  }
  const options = streams === undefined ? optionsOf({ exchange, symbols, dataTypes }) : streams.map(optionsOf)
  return `${url.replace(/\/$/, '')}/ws-stream-normalized?options=${encodeURIComponent(JSON.stringify(options))}`
}

/**
 * @param {{url?: string, exchange?: string, symbols?: string[], dataTypes?: string[],
 *   streams?: import('./combine.js').StreamSpec[], bookDepth?: number, bookIntervalMs?: number,
 *   timeoutIntervalMS?: number, log?: import('../log.js').Log}} options with `streams`: several exchanges
 *   in one connection (the returned stream then has `streams` and `dataTypes`, as openCombined's)
 */
export function openTardisMachine ({ log = silentLog, ...options }) {
  const url = options.url ?? 'ws://localhost:8001'
  const full = machineUrl(options)
  const stats = { messages: 0, bad: 0 }

  async function * run () {
    const ws = new WebSocket(full, { perMessageDeflate: false, handshakeTimeout: 10000 })
    /** @type {any[]} */
    const queue = []
    let wake = null
    let closed = null
    const notify = () => { if (wake !== null) { const w = wake; wake = null; w() } }
    ws.on('message', (data) => {
      try {
        const m = parseMachineMessage(data.toString())
        if (m === null) stats.bad++
        else queue.push(m)
      } catch (e) {
        stats.bad++
        if (stats.bad <= 5) log(`tardis-machine: message is not JSON: ${e.message}`)
      }
      if (queue.length > 10000) ws.pause()
      notify()
    })
    ws.on('error', (e) => { closed = closed ?? { reason: 'error', error: `tardis-machine: ${url}: ${e.message}` }; notify() })
    ws.on('close', (code) => { closed = closed ?? { reason: 'source_closed', error: code === 1000 ? null : `tardis-machine closed the connection (code ${code})` }; notify() })
    try {
      for (;;) {
        while (queue.length > 0) {
          const m = queue.shift()
          stats.messages++
          yield m
          if (queue.length < 1000 && ws.isPaused) ws.resume()
        }
        if (closed !== null) {
          yield { type: 'end', ...closed }
          return
        }
        await new Promise((resolve) => { wake = resolve })
      }
    } finally {
      ws.terminate()
    }
  }
  if (options.streams === undefined) return { stats, [Symbol.asyncIterator]: () => run() }
  const streams = options.streams.map((st) => ({ exchange: st.exchange, symbols: st.symbols, dataTypes: st.dataTypes, unavailable: [] }))
  return { stats, streams, dataTypes: [...new Set(streams.flatMap((st) => st.dataTypes))], unavailable: [], [Symbol.asyncIterator]: () => run() }
}
