// Recording (--record-dir): every raw exchange message tardis-dev's feed receives, before normalization
// (feed-patch.js hands them over as they arrive, and the REST manual snapshots it fetched, e.g. Binance's
// `<sym>@depthSnapshot`), written as `<local receive time, ns since epoch> <json>` lines to gzip files,
// one per exchange and UTC hour of the local receive time: DIR/<exchange>/<exchange>-<YYYY-MM-DDTHH>.gz.
// That is the replay format (`--source replay --files ...`, recording.js).
//
// Lines are gathered per exchange into blocks (blockBytes, or whatever came within flushMs); each block
// is gzip-compressed off the event loop (zlib's thread pool) and appended to its file as one gzip member
// (a file is a multi-member gzip, which gunzip, Node's and Python's readers read as one stream). So a
// file is a complete gzip after every block: an ingester killed (SIGKILL) loses at most the block being
// gathered or written, never the file. One block per exchange is written at a time; while more than
// highWaterBytes wait, `busy` is true and the pipeline waits for `whenDrained()` (back-pressure to the
// source, as with ZeroMQ). A write error is logged and counted (the block's lines `lost`) and the next
// block tries the file again; it never stops the stream. A restart within the same hour appends to the
// hour's file.
import { createWriteStream, mkdirSync } from 'node:fs'
import { once } from 'node:events'
import { join } from 'node:path'
import { gzip } from 'node:zlib'
import { promisify } from 'node:util'
import { silentLog } from './log.js'

const gzipAsync = promisify(gzip)
const HOUR_NS = 3_600_000_000_000n
const ERROR_LOG_EVERY_MS = 10_000

/** Local wall-clock time, ns since the epoch (µs resolution). @returns {bigint} */
export const wallNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n

/** `YYYY-MM-DDTHH` (UTC) of a time in ns since the epoch. @param {bigint} ns */
export const hourOf = (ns) => new Date(Number(ns / 1_000_000n)).toISOString().slice(0, 13)

/**
 * The file of an exchange's hour.
 * @param {string} dir @param {string} exchange @param {string} hour `YYYY-MM-DDTHH`
 */
export const recordingPath = (dir, exchange, hour) => join(dir, exchange, `${exchange}-${hour}.gz`)

/**
 * @typedef {object} RecorderCounts
 * @property {number} messages lines taken (raw messages and manual snapshots)
 * @property {number} bytes uncompressed bytes of the lines written
 * @property {number} written gzip bytes written to the files
 * @property {number} blocks gzip members written
 * @property {number} files files opened (one per exchange and hour, again after a write error)
 * @property {number} errors failed writes (open, compress, write, close)
 * @property {number} lost lines of blocks that could not be written
 * @property {number} after_close lines that came after close(): the session had ended, and a feed still
 *   closing delivered them (not recorded, as they were not streamed either)
 */

/** @returns {RecorderCounts} */
const newCounts = () => ({ messages: 0, bytes: 0, written: 0, blocks: 0, files: 0, errors: 0, lost: 0, after_close: 0 })

/**
 * @typedef {object} Target one exchange-hour file
 * @property {string} path
 * @property {import('node:fs').WriteStream|null} stream
 *
 * @typedef {object} ExchangeState
 * @property {string} exchange
 * @property {RecorderCounts} counts
 * @property {string[]} lines gathered, not handed to a block yet
 * @property {number} chars their length
 * @property {bigint} hourStart
 * @property {bigint} hourEnd
 * @property {Target|null} target
 * @property {Promise<void>} chain blocks and file changes, in order
 */

/**
 * @typedef {object} RecorderOptions
 * @property {string} dir
 * @property {import('./log.js').Log} [log]
 * @property {() => bigint} [now] local receive time, ns since the epoch (tests inject a clock)
 * @property {number} [blockBytes] a block is written once its lines take this many characters (default 256 KiB)
 * @property {number} [flushMs] and at least this often (default 1000; 0 = only at blockBytes, rotation and close)
 * @property {number} [highWaterBytes] `busy` while more than this waits (default 16 MiB)
 * @property {(path: string) => import('node:fs').WriteStream} [openFile] (tests: a failing file)
 */

export class Recorder {
  /** @param {RecorderOptions} options */
  constructor ({ dir, log = silentLog, now = wallNs, blockBytes = 256 * 1024, flushMs = 1000, highWaterBytes = 16 * 1024 * 1024, openFile }) {
    if (typeof dir !== 'string' || dir === '') throw new Error('recorder: dir is required')
    this.dir = dir
    this.log = log
    this.now = now
    this.blockBytes = blockBytes
    this.highWaterBytes = highWaterBytes
    this.openFile = openFile ?? ((path) => createWriteStream(path, { flags: 'a' }))
    /** @type {Map<string, ExchangeState>} */
    this.exchanges = new Map()
    /** characters gathered or in blocks not written yet */
    this.queued = 0
    this.closed = false
    /** @type {(() => void)[]} */
    this._waiters = []
    this._errorLogDueMs = 0
    this._timer = flushMs > 0 ? setInterval(() => this.flush(), flushMs).unref() : null
  }

  /** Counts over every exchange. @returns {RecorderCounts} */
  get stats () {
    const total = newCounts()
    for (const ex of this.exchanges.values()) for (const k of Object.keys(total)) total[k] += ex.counts[k]
    return total
  }

  /** Counts per exchange. @returns {Record<string, RecorderCounts>} */
  countsByExchange () {
    return Object.fromEntries([...this.exchanges].map(([name, ex]) => [name, { ...ex.counts }]))
  }

  /** Too much waits to be written: the pipeline should wait for whenDrained(). */
  get busy () { return this.queued > this.highWaterBytes }

  /** Resolves once no more than half of highWaterBytes waits. @returns {Promise<void>} */
  whenDrained () {
    if (this.queued <= this.highWaterBytes / 2) return Promise.resolve()
    return new Promise((resolve) => this._waiters.push(resolve))
  }

  /**
   * Records one raw message as received now (serialized now: tardis-dev's mappers may change it later).
   * @param {string} exchange @param {any} msg
   */
  write (exchange, msg) {
    this.writeLine(exchange, this.now(), typeof msg === 'string' ? msg : JSON.stringify(msg))
  }

  /**
   * @param {string} exchange
   * @param {bigint} ns local receive time, ns since the epoch
   * @param {string} json one line of JSON (no newline)
   */
  writeLine (exchange, ns, json) {
    const ex = this._state(exchange)
    if (this.closed) {
      ex.counts.after_close++
      return
    }
    if (ex.target === null || ns < ex.hourStart || ns >= ex.hourEnd) this._rotate(ex, ns)
    const line = `${ns} ${json}\n`
    ex.lines.push(line)
    ex.chars += line.length
    this.queued += line.length
    ex.counts.messages++
    if (ex.chars >= this.blockBytes) this._block(ex)
  }

  /** Hands every exchange's gathered lines to a block (the flush timer, close). */
  flush () {
    for (const ex of this.exchanges.values()) this._block(ex)
  }

  /**
   * Writes what is gathered and closes every file (complete gzip files); later lines are not recorded,
   * counted as `after_close`.
   * @returns {Promise<RecorderCounts>}
   */
  async close () {
    if (this._timer !== null) clearInterval(this._timer)
    if (!this.closed) {
      this.closed = true
      for (const ex of this.exchanges.values()) {
        this._block(ex)
        const target = ex.target
        ex.target = null
        if (target !== null) ex.chain = ex.chain.then(() => this._closeTarget(ex, target))
      }
    }
    await Promise.all([...this.exchanges.values()].map((ex) => ex.chain))
    return this.stats
  }

  /** @param {string} exchange @returns {ExchangeState} */
  _state (exchange) {
    let ex = this.exchanges.get(exchange)
    if (ex === undefined) {
      ex = { exchange, counts: newCounts(), lines: [], chars: 0, hourStart: 0n, hourEnd: 0n, target: null, chain: Promise.resolve() }
      this.exchanges.set(exchange, ex)
    }
    return ex
  }

  /** The file of the hour of `ns` from now on (the previous one gets its lines, then is closed). @param {ExchangeState} ex @param {bigint} ns */
  _rotate (ex, ns) {
    this._block(ex)
    const previous = ex.target
    if (previous !== null) ex.chain = ex.chain.then(() => this._closeTarget(ex, previous))
    ex.hourStart = ns - (((ns % HOUR_NS) + HOUR_NS) % HOUR_NS)
    ex.hourEnd = ex.hourStart + HOUR_NS
    ex.target = { path: recordingPath(this.dir, ex.exchange, hourOf(ex.hourStart)), stream: null }
  }

  /** The gathered lines as one block for the current file. @param {ExchangeState} ex */
  _block (ex) {
    if (ex.lines.length === 0 || ex.target === null) return
    const text = ex.lines.join('')
    const lines = ex.lines.length
    const chars = ex.chars
    ex.lines = []
    ex.chars = 0
    const target = ex.target
    ex.chain = ex.chain.then(() => this._writeBlock(ex, target, text, lines)).finally(() => this._written(chars))
  }

  /** @param {number} chars */
  _written (chars) {
    this.queued -= chars
    if (this._waiters.length > 0 && this.queued <= this.highWaterBytes / 2) {
      const waiters = this._waiters
      this._waiters = []
      for (const w of waiters) w()
    }
  }

  /** @param {ExchangeState} ex @param {Target} target @param {string} text @param {number} lines */
  async _writeBlock (ex, target, text, lines) {
    try {
      const raw = Buffer.from(text, 'utf8')
      const gz = await gzipAsync(raw)
      const stream = this._open(ex, target)
      await new Promise((resolve, reject) => stream.write(gz, (e) => (e ? reject(e) : resolve(undefined))))
      ex.counts.bytes += raw.length
      ex.counts.written += gz.length
      ex.counts.blocks++
    } catch (e) {
      ex.counts.errors++
      ex.counts.lost += lines
      this._error(`cannot write ${lines} line(s) to ${target.path}: ${/** @type {any} */ (e)?.message ?? e}`)
      target.stream?.destroy()
      target.stream = null // the next block opens the file again
    }
  }

  /** @param {ExchangeState} ex @param {Target} target */
  _open (ex, target) {
    if (target.stream !== null) return target.stream
    mkdirSync(join(this.dir, ex.exchange), { recursive: true })
    const stream = this.openFile(target.path)
    stream.on('error', () => {}) // reported by the write callback
    target.stream = stream
    ex.counts.files++
    this.log(`recording: ${ex.exchange} -> ${target.path}`)
    return stream
  }

  /** @param {ExchangeState} ex @param {Target} target */
  async _closeTarget (ex, target) {
    const stream = target.stream
    target.stream = null
    if (stream === null) return
    try {
      const closed = once(stream, 'close')
      stream.end()
      await closed
    } catch (e) {
      ex.counts.errors++
      this._error(`cannot close ${target.path}: ${/** @type {any} */ (e)?.message ?? e}`)
    }
  }

  /** Logs a write error, at most once every 10 s (all are counted). @param {string} what */
  _error (what) {
    const now = Date.now()
    if (now < this._errorLogDueMs) return
    this._errorLogDueMs = now + ERROR_LOG_EVERY_MS
    this.log(`recording: ${what} (counted; the stream goes on; further errors within 10 s only counted)`)
  }
}
