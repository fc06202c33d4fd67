// Shared test helpers (no network: everything on 127.0.0.1 / inproc).
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { readLines } from '../src/replay/recording.js'
import { toUs } from '../src/convert.js'
import { Batcher } from '../src/batcher.js'
import { decodeFrame, frameToRows } from '../src/wire/index.js'

export const INGEST_DIR = fileURLToPath(new URL('..', import.meta.url))
export const REPO_ROOT = resolve(INGEST_DIR, '..')
export const SHARED_DATA = resolve(REPO_ROOT, '../shared/data')
export const SPOT_0808 = resolve(SHARED_DATA, 'binance-ws/spot_btcusdt_20240808.gz')
export const BITMEX_WS = resolve(SHARED_DATA, 'cryptofeed-ws/BITMEX.ws.1.0')
export const COINBASE_WS = resolve(SHARED_DATA, 'cryptofeed-ws/COINBASE.ws.28.0')
export const DERIBIT_WS = resolve(SHARED_DATA, 'cryptofeed-ws/DERIBIT.ws.1.0')

export const tmpDir = () => mkdtempSync(join(tmpdir(), 'ingest-test-'))

/** A TCP port that nothing listens on (bound then closed). */
export async function closedPort () {
  const srv = createServer()
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = /** @type {import('node:net').AddressInfo} */ (srv.address())
  await new Promise((resolve) => srv.close(resolve))
  return port
}

/**
 * First `count` lines of a recording.
 * @param {string} file
 * @param {number} count
 */
export async function headLines (file, count) {
  const out = []
  for await (const line of readLines(file)) {
    out.push(line)
    if (out.length === count) break
  }
  return out
}

/**
 * Writes lines into a new gzip file in dir.
 * @param {string} dir @param {string} name @param {string[]} lines
 */
export function writeGz (dir, name, lines) {
  const p = join(dir, name)
  writeFileSync(p, gzipSync(lines.join('\n') + '\n'))
  return p
}

/**
 * What each @trade line of a recording must become, parsed by the test itself.
 * @param {string[]} lines
 */
export function expectedTrades (lines) {
  const out = []
  for (const line of lines) {
    const json = line.slice(line.indexOf(' ') + 1)
    const msg = JSON.parse(json)
    if (typeof msg.stream !== 'string' || !msg.stream.endsWith('@trade')) continue
    const d = msg.data
    out.push({ symbol: d.s, id: String(d.t), price: Number(d.p), amount: Number(d.q), side: d.m ? 'sell' : 'buy', timestampMs: d.T })
  }
  return out
}

/**
 * Collects every message of a source (flattening arrays) until it ends.
 * @param {AsyncIterable<any>} source
 */
export async function collect (source) {
  const out = []
  for await (const m of source) {
    if (Array.isArray(m)) out.push(...m)
    else out.push(m)
  }
  return out
}

/**
 * The received messages of a cryptofeed capture (`<epoch seconds>: <json>` lines), parsed by the test
 * itself; connect and sent lines are left out.
 * @param {string} file
 * @returns {any[]}
 */
export function cryptofeedReceived (file) {
  const out = []
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\d+(?:\.\d+)?: (\{.*\})$/.exec(line)
    if (m !== null) out.push(JSON.parse(m[1]))
  }
  return out
}

/**
 * Writes a recording in cryptofeed's line format: one connect line, then `<epoch seconds>: <json>`.
 * @param {string} dir @param {string} name @param {string} url @param {any[]} messages @param {number} [t0] epoch seconds
 */
export function writeCryptofeed (dir, name, url, messages, t0 = 1626993367.5) {
  const p = join(dir, name)
  const lines = [`${url} <-> ${t0}`, ...messages.map((m, i) => `${(t0 + 0.1 * (i + 1)).toFixed(6)}: ${JSON.stringify(m)}`)]
  writeFileSync(p, lines.join('\n') + '\n')
  return p
}

/**
 * Top `depth` levels of one book side (price -> amount), best first, padded with empty levels the way
 * tardis-dev's book snapshots are: [[price, amount] | [undefined, undefined], ...].
 * @param {Map<number, number>} levels @param {'bids'|'asks'} side @param {number} depth
 */
export function topLevels (levels, side, depth) {
  const sorted = [...levels].filter(([, a]) => a > 0).sort((x, y) => (side === 'bids' ? y[0] - x[0] : x[0] - y[0]))
  const out = sorted.slice(0, depth)
  while (out.length < depth) out.push([undefined, undefined])
  return out
}

/** A tardis-dev book snapshot's levels as [[price, amount], ...]. @param {{price: any, amount: any}[]} levels */
export const levelsOf = (levels) => levels.map((l) => [l.price, l.amount])

/**
 * The book snapshots computeBookSnapshots({interval: 0}) must emit for one symbol, given the symbol's
 * book after each of its frames: a snapshot whenever the top levels differ from the previous snapshot
 * (the first one compared with an empty book).
 * @param {{bids: any[][], asks: any[][], timestampUs?: number}[]} states
 * @param {number} depth
 */
export function distinctTops (states, depth) {
  const empty = JSON.stringify({ bids: topLevels(new Map(), 'bids', depth), asks: topLevels(new Map(), 'asks', depth) })
  let prev = empty
  const out = []
  for (const s of states) {
    const key = JSON.stringify({ bids: s.bids, asks: s.asks })
    if (key !== prev) out.push(s)
    prev = key
  }
  return out
}

/**
 * Sends normalized messages (up to an `end`) through the real Batcher and wire encoder and decodes every
 * frame again, as the processor would.
 * @param {any[]} messages
 * @param {{exchange: string, symbols: string[], dataTypes: string[]} | {streams: {exchange: string, symbols: string[], dataTypes: string[]}[]}} o
 *   one exchange, or several (`streams`)
 * @returns {Promise<{header: any, rows: any[]}[]>} frames after `start`, with rows decoded
 */
export async function throughWire (messages, o) {
  const streams = 'streams' in o ? o.streams : [o]
  const frames = []
  const batcher = new Batcher({
    send: async (f) => { const d = decodeFrame(f.build()); frames.push({ header: d.header, rows: d.header.n > 0 ? frameToRows(d) : [] }) },
    session: 'test',
    subscribed: Object.fromEntries(streams.map((s) => [s.exchange, s.symbols.map((sym) => sym.toUpperCase())]))
  })
  batcher.start({ source: 'replay', exchanges: streams.map((s) => s.exchange), data_types: [...new Set(streams.flatMap((s) => s.dataTypes))], speed: 'max', ingester_version: 'test' })
  for (const m of messages) {
    if (m.type === 'end') break
    const p = batcher.push(m)
    if (p !== undefined) await p
  }
  await batcher.end({ reason: 'replay_finished', counts: {} })
  return frames.slice(1)
}

/**
 * Rows of every frame of one type, with the frame's symbol table resolved: row.symbol = [exchange, symbol].
 * @param {{header: any, rows: any[]}[]} frames @param {string} type
 */
export function rowsOfType (frames, type) {
  return frames.filter((f) => f.header.type === type).flatMap((f) => f.rows.map((r) => ({ ...r, symbol: f.header.symbols[r.sym] })))
}

/**
 * A normalized trade from tardis-dev equals the one expected from the raw frames.
 * @param {any} m @param {{symbol: string, id: string, price: number, amount: number, side: string, timestampMs: number}} e
 * @param {string} exchange @param {string} where
 */
export function assertTrade (m, e, exchange, where) {
  assert.equal(m.type, 'trade', where)
  assert.equal(m.exchange, exchange, where)
  assert.equal(m.symbol, e.symbol, where)
  assert.equal(m.id, e.id, where)
  assert.equal(m.price, e.price, where)
  assert.equal(m.amount, e.amount, where)
  assert.equal(m.side, e.side, where)
  assert.ok(m.timestamp instanceof Date, where)
  assert.equal(m.timestamp.valueOf(), e.timestampMs, where)
  assert.equal(toUs(m.timestamp), e.timestampMs * 1000, where)
  assert.ok(m.localTimestamp instanceof Date, where)
}
