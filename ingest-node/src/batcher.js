// Batches normalized messages into wire frames: one open FrameBuilder per frame type (and header
// shape). A batch goes out at the end of the current event-loop turn (setImmediate), when it holds
// maxBatch rows, or when a message of another frame type comes; a control message (disconnect, ledger,
// end) first flushes every pending batch. So frames leave in message order across types.
// It also keeps the ingester's half of the ledger (proto/README.md "Ledger counts"): every message
// pushed is counted in `normalized` and becomes a row, a disconnect frame, or a counted drop.
// With a journal, every frame (start, data, ledger, end) is written to it when it is encoded, right
// before the sender hands it to ZeroMQ, and its header carries its `jseq` (proto/README.md "Journal").
import { randomBytes } from 'node:crypto'
import { FrameBuilder } from './wire/builder.js'
import { writers, writeDisconnect, WRITER_TYPES } from './convert.js'
import { monoUs, silentLog } from './log.js'

/**
 * A frame ready to be encoded: the sender calls `build()` right before handing it to ZeroMQ, so
 * sent_mono_us is the hand-off time; with a journal, build() also appends the frame to it.
 * @typedef {object} PendingFrame
 * @property {string} type
 * @property {number} n rows
 * @property {number} seq
 * @property {() => Buffer} build
 */

/**
 * The batcher's part of the ledger counts (proto/README.md "Ledger counts"); the pipeline adds the
 * source's `raw` and `internal`.
 * @typedef {object} BatcherCounts
 * @property {Record<string, number>} rows rows per data frame type (trade, ..., disconnect) in frames enqueued so far
 * @property {number} frames frames enqueued so far (in a ledger or end frame: those before it, = its seq)
 * @property {Record<string, number>} frames_by_type the same per frame type (start, trade, disconnect, ledger, ...)
 * @property {number} bytes bytes of those frames (in a ledger or end frame: set when it is encoded)
 * @property {Record<string, number>} normalized messages pushed or dropped, per message `type`
 * @property {Record<string, number>} dropped messages that became no row, per `<reason>:<message type>`
 * @property {import('./journal.js').JournalCounts} [journal] with a journal: its counts (in a ledger or end
 *   frame: set when it is encoded, so `records` counts the frames journaled before it)
 */

/**
 * @typedef {object} BatcherOptions
 * @property {(frame: PendingFrame) => Promise<any>} send delivers frames in call order (see sender.js)
 * @property {number} [maxBatch] rows per frame at most (default 2000)
 * @property {string} [session] default: random per process run
 * @property {Record<string, string[]>} [subscribed] exchange -> subscribed symbols (disconnect fallback, start frame)
 * @property {import('./journal.js').Journal|null} [journal] an open journal: every frame is appended to it
 * @property {import('./log.js').Log} [log]
 */

export const newSessionId = () => randomBytes(8).toString('hex')

export class Batcher {
  /** @param {BatcherOptions} options */
  constructor ({ send, maxBatch = 2000, session = newSessionId(), subscribed = {}, journal = null, log = silentLog }) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new Error(`batcher: maxBatch must be a positive integer, got ${maxBatch}`)
    this._send = send
    this.maxBatch = maxBatch
    this.session = session
    this.subscribed = subscribed
    this.journal = journal
    this.log = log
    this.seq = 0
    /** @type {Map<string, FrameBuilder>} key -> builder with rows not sent yet */
    this._open = new Map()
    /** @type {string|null} the builder key of the last data message (a change of key flushes the others) */
    this._lastKey = null
    /** @type {Map<string, FrameBuilder[]>} key -> free builders for reuse */
    this._free = new Map()
    this._immediate = null
    /** @type {Promise<any>|null} last send not settled yet (back-pressure for push) */
    this._pending = null
    this._failed = null
    /** rows per frame type */
    this.rows = Object.create(null)
    /** message types that have no frame type: count per type */
    this.unknown = Object.create(null)
    this.unknownTotal = 0
    /** messages per writer type (WRITER_TYPES order) that became rows: a typed array on the hot path */
    this._written = new Float64Array(WRITER_TYPES.length)
    /** @type {Record<string, number>} the other messages counted in `normalized`: disconnects, drops */
    this._normalizedOther = Object.create(null)
    /** @type {Record<string, number>} `<reason>:<message type>` -> messages that became no row */
    this.dropped = Object.create(null)
    /** @type {Record<string, number>} frames enqueued per frame type */
    this.framesByType = Object.create(null)
    /** bytes of the frames encoded so far (frames are encoded in seq order) */
    this.bytes = 0
    this.started = false
    this.ended = false
  }

  /** @param {string} key @param {string} type @param {Record<string, any>} header */
  _builder (key, type, header) {
    let b = this._open.get(key)
    if (b === undefined) {
      b = this._free.get(key)?.pop() ?? new FrameBuilder(type, header, { capacity: Math.min(this.maxBatch, 4096) })
      this._open.set(key, b)
    }
    return b
  }

  /**
   * Hands a builder's rows to the sender as the next frame (seq assigned now, encoded at send time).
   * @param {string|null} key builder key to return the builder to after encoding (null: throw away)
   * @param {FrameBuilder} b
   */
  _enqueue (key, b) {
    const seq = this.seq++
    const session = this.session
    const rows = b.n
    const journal = this.journal
    const frame = {
      type: b.type,
      n: rows,
      seq,
      build: () => {
        let buf
        if (journal === null) {
          buf = b.build({ seq, session, sent_mono_us: monoUs() })
        } else {
          const jseq = journal.nextJseq
          buf = b.build({ seq, session, sent_mono_us: monoUs(), jseq })
          journal.append(jseq, buf)
        }
        this.bytes += buf.length
        if (key !== null) {
          let free = this._free.get(key)
          if (free === undefined) this._free.set(key, (free = []))
          if (free.length < 2) free.push(b)
        }
        return buf
      }
    }
    if (b.spec.columns.length > 0) this.rows[b.type] = (this.rows[b.type] ?? 0) + rows
    this.framesByType[b.type] = (this.framesByType[b.type] ?? 0) + 1
    const p = this._send(frame)
    const tracked = p.then(
      () => { if (this._pending === tracked) this._pending = null },
      (e) => { this._failed = this._failed ?? e; if (this._pending === tracked) this._pending = null; throw e }
    )
    tracked.catch(() => {}) // observed via _failed / the returned promise
    this._pending = tracked
    return tracked
  }

  /** Sends every open batch, in the order their first rows arrived. */
  _flushAll () {
    if (this._immediate !== null) {
      clearImmediate(this._immediate)
      this._immediate = null
    }
    let last = null
    for (const [key, b] of this._open) {
      if (b.n > 0) last = this._enqueue(key, b)
    }
    this._open.clear()
    return last
  }

  _schedule () {
    if (this._immediate === null) {
      this._immediate = setImmediate(() => {
        this._immediate = null
        this._flushAll()
      })
    }
  }

  /**
   * The first frame of the session.
   * @param {{source: string, exchanges: string[], data_types: string[], speed: string|number|null, ingester_version: string}} info
   */
  start (info) {
    if (this.started) throw new Error('batcher: start() called twice')
    this.started = true
    const b = new FrameBuilder('start', info)
    b.recvMonoUs = monoUs()
    for (const [exchange, symbols] of Object.entries(this.subscribed)) {
      for (const s of symbols) b.symbolIndex(exchange, String(s).toUpperCase())
    }
    return this._enqueue(null, b)
  }

  /**
   * Adds one message and counts it in `normalized`: a data message becomes a row (counted in `rows`
   * when its frame is enqueued), a disconnect one disconnect frame, any other type a drop
   * (`unknown_type:<type>`). Returns a promise when the caller should wait (a frame had to be sent now,
   * or a send is still blocked on back-pressure), undefined otherwise. Throws, counting nothing, when an
   * earlier send failed.
   * @param {import('./convert.js').Message} m
   * @returns {Promise<any>|undefined}
   */
  push (m) {
    if (this._failed !== null) throw this._failed
    if (!this.started) throw new Error('batcher: push() before start(): the start frame must be the first of the session')
    const type = m.type
    const w = writers[type]
    if (w !== undefined) {
      const key = w.key(m)
      // a frame holds messages that came one after another: one of another frame type first sends the
      // open ones, so frames leave in arrival order across types (a ticker that came before a trade is
      // handled before the candle that trade closes, however fast the source)
      if (key !== this._lastKey && this._open.size > 0 && !(this._open.size === 1 && this._open.has(key))) this._flushAll()
      this._lastKey = key
      const b = this._open.get(key) ?? this._builder(key, w.frameType, w.header(m))
      w.write(b, m)
      this._written[/** @type {number} */ (w.index)]++
      if (b.n >= this.maxBatch) {
        this._open.delete(key)
        return this._enqueue(key, b)
      }
      this._schedule()
      return this._pending ?? undefined
    }
    if (type === 'disconnect') {
      this._flushAll()
      const b = new FrameBuilder('disconnect')
      writeDisconnect(b, m, this.subscribed[m.exchange] ?? [])
      this._normalizedOther[type] = (this._normalizedOther[type] ?? 0) + 1
      return this._enqueue(null, b)
    }
    if (type === 'end') {
      throw new Error('batcher: an end message must go through end(), not push()')
    }
    const name = String(type)
    this.unknownTotal++
    if (this.unknown[name] === undefined) {
      this.unknown[name] = 0
      this.log(`message type ${JSON.stringify(name)} has no frame type: counted as dropped (unknown_type:${name}) and not sent (logged once per type)`)
    }
    this.unknown[name]++
    this.drop(m, 'unknown_type')
    return this._pending ?? undefined
  }

  /**
   * Counts a message that will not become a row: in `normalized` and in `dropped` under
   * `<reason>:<message type>` (the reason has no colon).
   * @param {{type: any}} m
   * @param {string} reason
   */
  drop (m, reason) {
    const type = String(m?.type)
    this._normalizedOther[type] = (this._normalizedOther[type] ?? 0) + 1
    const key = `${reason}:${type}`
    this.dropped[key] = (this.dropped[key] ?? 0) + 1
  }

  /**
   * The batcher's ledger counts now (copies). Right after a flush (as in a ledger or end frame), for
   * every data message type t: normalized[t] = rows[t] + the dropped entries ending in `:t`;
   * normalized.disconnect = frames_by_type.disconnect + the dropped entries ending in `:disconnect`.
   * @returns {BatcherCounts}
   */
  /** @returns {Record<string, number>} messages pushed or dropped so far, per message `type` */
  get normalized () {
    /** @type {Record<string, number>} */
    const out = {}
    WRITER_TYPES.forEach((type, i) => { if (this._written[i] > 0) out[type] = this._written[i] })
    for (const [type, n] of Object.entries(this._normalizedOther)) out[type] = (out[type] ?? 0) + n
    return out
  }

  counts () {
    const counts = {
      rows: { ...this.rows },
      frames: this.seq,
      frames_by_type: { ...this.framesByType },
      bytes: this.bytes,
      normalized: this.normalized,
      dropped: { ...this.dropped }
    }
    return this.journal === null ? counts : { ...counts, journal: this.journal.counts() }
  }

  /** Flushes pending batches now (control-message semantics without a control frame). */
  flush () {
    return this._flushAll() ?? this._pending ?? Promise.resolve()
  }

  /**
   * Flushes every pending batch, then enqueues a header-only frame whose header carries `counts`.
   * `counts` (a function is called now, after the flush) is the snapshot at enqueue time; if it has a
   * `bytes` field, that is set when the frame is encoded, to the bytes of every earlier frame (frames
   * are encoded in seq order).
   * @param {'ledger'|'end'} type
   * @param {Record<string, any>} header other header fields
   * @param {Record<string, any>|(() => Record<string, any>)} counts
   */
  _countsFrame (type, header, counts) {
    this._flushAll()
    const snapshot = typeof counts === 'function' ? counts() : counts
    const b = new FrameBuilder(type, { ...header, counts: snapshot })
    b.recvMonoUs = monoUs()
    if (snapshot !== null && typeof snapshot === 'object' && 'bytes' in snapshot) {
      const build = b.build.bind(b)
      b.build = (h) => {
        snapshot.bytes = this.bytes
        if (this.journal !== null && 'journal' in snapshot) snapshot.journal = this.journal.counts()
        return build(h)
      }
    }
    return this._enqueue(null, b)
  }

  /**
   * Sends a `ledger` frame: every pending batch first, so each row counted in it is in an earlier frame.
   * @param {Record<string, any>|(() => Record<string, any>)} [counts] default: this.counts()
   */
  ledger (counts = () => this.counts()) {
    if (!this.started || this.ended) throw new Error('batcher: ledger() outside the session (before start() or after end())')
    return this._countsFrame('ledger', {}, counts)
  }

  /**
   * Flushes everything and sends the `end` frame (the last of the session). `counts` as in ledger():
   * a snapshot taken now (after the flush), `bytes` set when the end frame is encoded.
   * @param {{reason: 'replay_finished'|'source_closed'|'error', error?: string|null, counts?: Record<string, any>|(() => Record<string, any>)}} info
   */
  end ({ reason, error = null, counts = () => this.counts() }) {
    if (this.ended) throw new Error('batcher: end() called twice')
    this.ended = true
    return this._countsFrame('end', { reason, error }, counts)
  }
}
