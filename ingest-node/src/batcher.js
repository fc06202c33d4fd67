// Batches normalized messages into wire frames: one open FrameBuilder per frame type (and header
// shape). A batch goes out at the end of the current event-loop turn (setImmediate) or when it holds
// maxBatch rows; a control message (disconnect, end) first flushes every pending batch, so frames
// leave in message order across types at every control message.
import { randomBytes } from 'node:crypto'
import { FrameBuilder } from './wire/builder.js'
import { writers, writeDisconnect } from './convert.js'
import { monoUs, silentLog } from './log.js'

/**
 * A frame ready to be encoded: the sender calls `build()` right before handing it to ZeroMQ, so
 * sent_mono_us is the hand-off time.
 * @typedef {object} PendingFrame
 * @property {string} type
 * @property {number} n rows
 * @property {number} seq
 * @property {() => Buffer} build
 */

/**
 * @typedef {object} BatcherOptions
 * @property {(frame: PendingFrame) => Promise<any>} send delivers frames in call order (see sender.js)
 * @property {number} [maxBatch] rows per frame at most (default 1000)
 * @property {string} [session] default: random per process run
 * @property {Record<string, string[]>} [subscribed] exchange -> subscribed symbols (disconnect fallback, start frame)
 * @property {import('./log.js').Log} [log]
 */

export const newSessionId = () => randomBytes(8).toString('hex')

export class Batcher {
  /** @param {BatcherOptions} options */
  constructor ({ send, maxBatch = 1000, session = newSessionId(), subscribed = {}, log = silentLog }) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new Error(`batcher: maxBatch must be a positive integer, got ${maxBatch}`)
    this._send = send
    this.maxBatch = maxBatch
    this.session = session
    this.subscribed = subscribed
    this.log = log
    this.seq = 0
    /** @type {Map<string, FrameBuilder>} key -> builder with rows not sent yet */
    this._open = new Map()
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
    const frame = {
      type: b.type,
      n: rows,
      seq,
      build: () => {
        const buf = b.build({ seq, session, sent_mono_us: monoUs() })
        if (key !== null) {
          let free = this._free.get(key)
          if (free === undefined) this._free.set(key, (free = []))
          if (free.length < 2) free.push(b)
        }
        return buf
      }
    }
    if (b.type !== 'start' && b.type !== 'end') this.rows[b.type] = (this.rows[b.type] ?? 0) + rows
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
   * Adds one message. Returns a promise when the caller should wait (a frame had to be sent now, or a
   * send is still blocked on back-pressure), undefined otherwise.
   * @param {import('./convert.js').Message} m
   * @returns {Promise<any>|undefined}
   */
  push (m) {
    if (this._failed !== null) throw this._failed
    if (!this.started) throw new Error('batcher: push() before start(): the start frame must be the first of the session')
    const w = writers[m.type]
    if (w !== undefined) {
      const key = w.key(m)
      const b = this._open.get(key) ?? this._builder(key, w.frameType, w.header(m))
      w.write(b, m)
      if (b.n >= this.maxBatch) {
        this._open.delete(key)
        return this._enqueue(key, b)
      }
      this._schedule()
      return this._pending ?? undefined
    }
    if (m.type === 'disconnect') {
      this._flushAll()
      const b = new FrameBuilder('disconnect')
      writeDisconnect(b, m, this.subscribed[m.exchange] ?? [])
      return this._enqueue(null, b)
    }
    if (m.type === 'end') {
      throw new Error('batcher: an end message must go through end(), not push()')
    }
    const type = String(m.type)
    this.unknownTotal++
    if (this.unknown[type] === undefined) {
      this.unknown[type] = 0
      this.log(`message type ${JSON.stringify(type)} has no frame type: counted as unknown and not sent (logged once per type)`)
    }
    this.unknown[type]++
    return this._pending ?? undefined
  }

  /** Flushes pending batches now (control-message semantics without a control frame). */
  flush () {
    return this._flushAll() ?? this._pending ?? Promise.resolve()
  }

  /**
   * Flushes everything and sends the `end` frame (the last of the session).
   * `counts` may be a function: it is called when the end frame is encoded, i.e. after every earlier
   * frame went to ZeroMQ, so frame and byte totals are final.
   * @param {{reason: 'replay_finished'|'source_closed'|'error', error?: string|null, counts: Record<string, any>|(() => Record<string, any>)}} info
   */
  end ({ reason, error = null, counts }) {
    if (this.ended) throw new Error('batcher: end() called twice')
    this.ended = true
    this._flushAll()
    const b = new FrameBuilder('end', { reason, error, counts: null })
    b.recvMonoUs = monoUs()
    const build = b.build.bind(b)
    b.build = (header) => {
      b.extraHeader.counts = typeof counts === 'function' ? counts() : counts
      return build(header)
    }
    return this._enqueue(null, b)
  }
}
