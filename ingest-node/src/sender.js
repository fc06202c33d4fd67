// ZeroMQ PUSH to the processor (which BINDs). A small send high-water mark turns an overloaded
// processor into back-pressure: send() stays pending, the pipeline awaits it and stops pulling from
// the source. zeromq.js allows one send in flight per socket, so sends are serialized here.
// An ingester run on its own with a journal (`busy: 'journal'`) never waits instead: a frame ZeroMQ
// cannot take at once is already in the journal, and stays only there (counted) for the processor to
// read when it is back (docs/ARCHITECTURE.md "Journal and checkpoints").
// With `curve`, the connection is encrypted and the processor authenticated by its public key.
import { Push } from 'zeromq'
import { silentLog } from './log.js'

/**
 * CURVE keys, each Z85-encoded (40 characters). They never go into a log line or an error message.
 * @typedef {object} CurveKeys
 * @property {string} serverKey the processor's public key
 * @property {string} publicKey this client's public key
 * @property {string} secretKey this client's secret key
 */

const Z85_KEY_RE = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/

/**
 * Whether a string is a Z85-encoded 32-byte key (40 characters of the Z85 alphabet).
 * @param {unknown} key
 */
export const isZ85Key = (key) => typeof key === 'string' && Z85_KEY_RE.test(key)

/**
 * @typedef {object} SenderOptions
 * @property {string} endpoint e.g. tcp://127.0.0.1:5555
 * @property {number} [sndhwm] send high-water mark in frames (default 4)
 * @property {number} [sndbuf] kernel TCP send buffer in bytes, ZMQ_SNDBUF (default 65536; 0 = OS default)
 * @property {number} [lingerMs] how long close() lets queued frames (the end frame) reach the peer (default 5000)
 * @property {CurveKeys|null} [curve] encrypt with CURVE and authenticate the processor (default null: plain)
 * @property {'wait'|'journal'} [busy] when ZeroMQ cannot take a frame at once (no processor connected, or
 *   the high-water mark reached): 'wait' (default: back-pressure), or 'journal': the frame, written to
 *   `journal` when it was built, is not sent and is counted (`journalOnly`; a Buffer, journaled by
 *   nobody, still waits)
 * @property {import('./journal.js').Journal|null} [journal] the journal the batcher writes ('journal' only)
 * @property {import('./log.js').Log} [log]
 */

export class Sender {
  /** @param {SenderOptions} options */
  constructor ({ endpoint, sndhwm = 4, sndbuf = 65536, lingerMs = 5000, curve = null, busy = 'wait', journal = null, log = silentLog }) {
    if (typeof endpoint !== 'string' || !/^(tcp|ipc|inproc):\/\//.test(endpoint)) {
      throw new Error(`sender: endpoint must look like tcp://host:port, ipc://path or inproc://name, got ${JSON.stringify(endpoint)}`)
    }
    if (!Number.isInteger(sndhwm) || sndhwm < 1) throw new Error(`sender: sndhwm must be a positive integer, got ${sndhwm}`)
    if (busy !== 'wait' && busy !== 'journal') throw new Error(`sender: busy must be 'wait' or 'journal', got ${JSON.stringify(busy)}`)
    if (busy === 'journal' && journal === null) throw new Error("sender: busy 'journal' needs the journal")
    this.endpoint = endpoint
    this.lingerMs = lingerMs
    this.busy = busy
    this.journal = journal
    /** whether the last frame went to the journal only (then nobody will hang up after the end frame) */
    this._lastJournalOnly = false
    this._journalOnlyLogDue = 0
    this.log = log
    if (!Number.isInteger(sndbuf) || sndbuf < 0) throw new Error(`sender: sndbuf must be a non-negative integer (bytes), got ${sndbuf}`)
    // the kernel's TCP send buffer holds frames beyond the high-water mark: keep it small too, or an
    // overloaded processor only shows up after megabytes of queued frames (0 = OS default)
    if (curve !== null) {
      for (const k of /** @type {const} */ (['serverKey', 'publicKey', 'secretKey'])) {
        if (!isZ85Key(curve[k])) throw new Error(`sender: curve.${k} must be a Z85-encoded key (40 characters)`)
      }
    }
    this.curve = curve !== null
    this.sock = new Push({
      sendHighWaterMark: sndhwm,
      linger: lingerMs,
      ...(sndbuf > 0 ? { sendBufferSize: sndbuf } : {}),
      ...(curve !== null ? { curveServerKey: curve.serverKey, curvePublicKey: curve.publicKey, curveSecretKey: curve.secretKey } : {})
    })
    // The processor closes its socket only once it has read the `end` frame, so the peer's disconnect
    // is the acknowledgement a PUSH socket otherwise lacks: close() waits for it before the process may
    // exit (an exiting process drops whatever ZeroMQ still queues, whatever the linger).
    // With CURVE, a failed handshake (wrong server key) is also a disconnect: only one after a
    // successful handshake counts.
    let handshaken = curve === null
    this.sock.events.on('handshake', () => { handshaken = true })
    this.peerGone = new Promise((resolve) => { this.sock.events.on('disconnect', () => { if (handshaken) resolve(true) }) })
    /** whether a processor is connected now (metrics, /health), and since when it is not (ms, wall time) */
    this.peerConnected = false
    this.peerDownSinceMs = Date.now()
    this.sock.events.on('connect', () => { this.peerConnected = true })
    this.sock.events.on('disconnect', () => {
      if (this.peerConnected) this.peerDownSinceMs = Date.now()
      this.peerConnected = false
    })
    /** @type {((type: string, bytes: number, rows: number, blockedMs: number) => void)|null} called for each frame ZeroMQ took (metrics) */
    this.onSent = null
    let handshakeLogged = false
    const onHandshakeError = (/** @type {any} */ ev) => {
      this.stats.handshakeErrors++
      if (handshakeLogged) return
      handshakeLogged = true
      this.log(`sender: ${this.curve ? 'CURVE ' : ''}handshake with ${endpoint} failed (${ev?.error?.message ?? ev?.type})${this.curve ? ': is MDTH_CURVE_SERVER_KEY the public key of the processor there?' : ''} (logged once, retrying)`)
    }
    for (const type of ['handshake:error:protocol', 'handshake:error:auth', 'handshake:error:other']) this.sock.events.on(type, onHandshakeError)
    this.sock.connect(endpoint)
    /** @type {Promise<any>} */
    this._tail = Promise.resolve()
    this.closed = false
    this.stats = {
      frames: 0,
      bytes: 0,
      /** rows sent per frame type */
      rows: /** @type {Record<string, number>} */ ({}),
      /** sends that found the socket full (high-water mark reached) */
      blockedSends: 0,
      /** total time spent waiting for those sends, ms */
      blockedMs: 0,
      /** failed security handshakes (CURVE: wrong server key, or the processor does not speak CURVE) */
      handshakeErrors: 0,
      /** busy 'journal': frames ZeroMQ could not take at once, left in the journal only */
      journalOnly: 0
    }
  }

  /**
   * Queues a frame; resolves when ZeroMQ took it. Frames go out in call order.
   * @param {import('./batcher.js').PendingFrame | Buffer} frame
   * @returns {Promise<void>}
   */
  send (frame) {
    if (this.closed) return Promise.reject(new Error(`sender: send() after close() (endpoint ${this.endpoint})`))
    const p = this._tail.then(() => this._sendNow(frame))
    this._tail = p.catch(() => {})
    return p
  }

  /** @param {import('./batcher.js').PendingFrame | Buffer} frame */
  async _sendNow (frame) {
    const buf = Buffer.isBuffer(frame) ? frame : frame.build()
    let blockedMs = 0
    if (this.sock.writable) {
      this._lastJournalOnly = false
      await this.sock.send(buf)
    } else if (this.busy === 'journal' && !Buffer.isBuffer(frame)) {
      const now = performance.now()
      if (!this._lastJournalOnly && now >= this._journalOnlyLogDue) { // a new spell, logged at most every 10 s
        this._journalOnlyLogDue = now + 10_000
        this.log(`sender: ZeroMQ cannot take frames now (no processor at ${this.endpoint}, or its queue is full): they wait in the journal only (${this.stats.journalOnly} so far, counted as frames_journal_only)`)
      }
      this.stats.journalOnly++
      /** @type {import('./journal.js').Journal} */ (this.journal).stats.frames_journal_only++
      this._lastJournalOnly = true
      return
    } else {
      this._lastJournalOnly = false
      const t0 = process.hrtime.bigint()
      this.stats.blockedSends++
      await this.sock.send(buf)
      blockedMs = Number(process.hrtime.bigint() - t0) / 1e6
      this.stats.blockedMs += blockedMs
    }
    this.stats.frames++
    this.stats.bytes += buf.length
    if (!Buffer.isBuffer(frame)) this.stats.rows[frame.type] = (this.stats.rows[frame.type] ?? 0) + frame.n
    if (this.onSent !== null) {
      try {
        this.onSent(Buffer.isBuffer(frame) ? 'raw' : frame.type, buf.length, Buffer.isBuffer(frame) ? 0 : frame.n, blockedMs)
      } catch {}
    }
  }

  /** Whether the last frame (after close(): the end frame) went to the journal only. */
  get lastJournalOnly () { return this._lastJournalOnly }

  /** Resolves when every frame queued so far went to ZeroMQ. */
  drain () { return this._tail }

  /**
   * Closes the socket now and drops every queued frame (linger 0): for an exit that must not wait,
   * e.g. when the processor is gone.
   */
  abort () {
    if (this.closed) return
    this.closed = true
    this.sock.linger = 0
    this.sock.close()
  }

  /**
   * Waits (at most timeoutMs) for queued frames to reach ZeroMQ, then closes the socket; ZeroMQ keeps
   * trying to deliver them to the peer for lingerMs. Returns whether everything was handed over.
   * @param {{timeoutMs?: number}} [options]
   */
  async close ({ timeoutMs = this.lingerMs } = {}) {
    if (this.closed) return true
    let timer
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs) })
    const drained = await Promise.race([this._tail.then(() => true), timeout])
    // handed over to ZeroMQ is not delivered: wait until the processor has read everything and hung up
    // (unless the end frame went to the journal only: no processor will hang up after it)
    const journalOnly = drained && this._lastJournalOnly
    if (journalOnly) this.log('sender: the end frame is in the journal only (ZeroMQ could not take it): not waiting for a processor')
    const acknowledged = drained && !journalOnly && await Promise.race([this.peerGone, timeout])
    clearTimeout(timer)
    this.closed = true
    if (!drained) {
      this.log(`sender: frames still queued after ${timeoutMs} ms: the processor at ${this.endpoint} is not reading; closing without them`)
    } else if (!acknowledged && !journalOnly) {
      this.log(`sender: the processor at ${this.endpoint} did not hang up within ${timeoutMs} ms of the end frame; it may not have received it`)
    }
    this.sock.linger = 0
    this.sock.close()
    return drained && acknowledged
  }
}
