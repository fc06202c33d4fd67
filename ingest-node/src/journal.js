// The journal: every wire frame appended to a local file before it is handed to ZeroMQ, so that a
// processor killed at any moment can read again what it had been sent (the kdb+ tickerplant's log;
// format in proto/README.md "Journal", its part in recovery in docs/ARCHITECTURE.md).
//
// Each frame gets a `jseq` (1, 2, 3, ... across files and ingester runs of one directory), which the
// batcher also writes into the frame's JSON header. One record is written with one synchronous writev
// call and no fsync: once the call returns the kernel holds the bytes, and a killed ingester (SIGKILL
// included) loses none of them; only a crash of the machine itself can lose what the kernel had not
// written to the disk yet.
import { closeSync, fstatSync, mkdirSync, openSync, readSync, readdirSync, readFileSync, statSync, unlinkSync, writeSync, writevSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { crc32 } from 'node:zlib'
import { silentLog } from './log.js'

export const MAGIC = Buffer.from('MDTHJNL1', 'latin1')
/** u32 length, u32 crc32, u64 jseq, i64 append time (µs) */
export const RECORD_HEADER_BYTES = 24
const NAME_RE = /^journal-(\d{20})\.jnl$/
const LOCK = 'journal.lock'
const MB = 1024 * 1024
const RETENTION_EVERY_MS = 60_000
const TWO_32 = 4294967296
/** directories a Journal of this process holds (a pid in journal.lock equal to ours is an earlier
 * process's, when pids repeat: a container's ingester is often pid 1 every time) */
const HELD = new Set()

if (typeof crc32 !== 'function') throw new Error('journal: node:zlib has no crc32 (Node >= 20.15 needed)')

/** @param {number} jseq */
export const journalFileName = (jseq) => `journal-${String(jseq).padStart(20, '0')}.jnl`

/**
 * The journal files of a directory, oldest (lowest first jseq) first; other files are not ours.
 * @param {string} dir
 * @returns {{name: string, path: string, first: number}[]}
 */
export function journalFiles (dir) {
  let names
  try {
    names = readdirSync(dir)
  } catch (e) {
    if (/** @type {any} */ (e).code === 'ENOENT') return []
    throw e
  }
  const out = []
  for (const name of names) {
    const m = NAME_RE.exec(name)
    if (m !== null) out.push({ name, path: join(dir, name), first: Number(m[1]) })
  }
  return out.sort((a, b) => a.first - b.first)
}

/**
 * The 24-byte record header (proto/README.md "Journal"), written into `into` at 0.
 * @param {Buffer} into @param {number} length @param {number} crc @param {number} jseq @param {number} appendUs
 */
export function writeRecordHeader (into, length, crc, jseq, appendUs) {
  into.writeUInt32LE(length, 0)
  into.writeUInt32LE(crc, 4)
  into.writeUInt32LE(jseq % TWO_32, 8)
  into.writeUInt32LE(Math.floor(jseq / TWO_32), 12)
  into.writeBigInt64LE(BigInt(appendUs), 16)
  return into
}

/**
 * Walks a file's records by their headers (not their CRCs): each must be whole and carry the next jseq
 * (the file name's first, then +1). Stops at the first that is not: a torn tail (a record cut short by
 * a crash), or bytes that are no record.
 * @param {string} path
 * @param {number} first the file's first jseq (from its name)
 * @returns {{records: number, last: number|null, end: number, size: number, magic: boolean}}
 *   `end`: the byte offset after the last whole record; `size - end` bytes are a torn tail
 */
export function scanFile (path, first) {
  const fd = openSync(path, 'r')
  try {
    const size = fstatSync(fd).size
    const head = Buffer.alloc(RECORD_HEADER_BYTES)
    if (size < MAGIC.length || readSync(fd, head, 0, MAGIC.length, 0) !== MAGIC.length || !head.subarray(0, MAGIC.length).equals(MAGIC)) {
      return { records: 0, last: null, end: 0, size, magic: false }
    }
    let pos = MAGIC.length
    let expect = first
    for (;;) {
      if (pos + RECORD_HEADER_BYTES > size) break
      if (readSync(fd, head, 0, RECORD_HEADER_BYTES, pos) !== RECORD_HEADER_BYTES) break
      const length = head.readUInt32LE(0)
      const jseq = head.readUInt32LE(8) + head.readUInt32LE(12) * TWO_32
      if (jseq !== expect || pos + RECORD_HEADER_BYTES + length > size) break
      pos += RECORD_HEADER_BYTES + length
      expect++
    }
    return { records: expect - first, last: expect > first ? expect - 1 : null, end: pos, size, magic: true }
  } finally {
    closeSync(fd)
  }
}

/**
 * @typedef {object} JournalCounts
 * @property {number} records records appended by this ingester run
 * @property {number} bytes their bytes (record headers included; file headers not)
 * @property {number} files files this run opened (the one at start, then one per rotation)
 * @property {number} rotated files closed at file_mb
 * @property {number} deleted files deleted by retention (max_mb, max_age_h)
 * @property {number} deleted_records jseqs in the deleted files
 * @property {number} deleted_bytes bytes of the deleted files
 * @property {number} torn_tails torn tails found at start in the newest file (a partial record after a crash)
 * @property {number} frames_journal_only frames ZeroMQ could not take at once (no processor, or its queue
 *   full) that an ingester run with `--when-busy journal` left in the journal only
 */

/**
 * @typedef {object} JournalOptions
 * @property {string} dir
 * @property {number} [fileMb] a file is closed before a record would take it past this (default 64)
 * @property {number} [maxMb] the oldest files are deleted while all of them take more (default 4096)
 * @property {number} [maxAgeH] and while the oldest was last written longer ago than this (default 72)
 * @property {import('./log.js').Log} [log]
 * @property {() => number} [nowUs] wall clock, µs since the epoch (tests)
 */

export class Journal {
  /** @param {JournalOptions} options */
  constructor ({ dir, fileMb = 64, maxMb = 4096, maxAgeH = 72, log = silentLog, nowUs = () => Date.now() * 1000 }) {
    if (typeof dir !== 'string' || dir === '') throw new Error('journal: dir is required')
    for (const [name, v] of [['fileMb', fileMb], ['maxMb', maxMb], ['maxAgeH', maxAgeH]]) {
      if (!(typeof v === 'number' && v > 0)) throw new Error(`journal: ${name} must be a number > 0, got ${v}`)
    }
    this.dir = dir
    this.fileBytes = fileMb * MB
    this.maxBytes = maxMb * MB
    this.maxAgeUs = maxAgeH * 3600e6
    this.log = log
    this.nowUs = nowUs
    /** the jseq the next record gets */
    this.nextJseq = 1
    /** @type {number|null} */
    this.fd = null
    /** @type {string|null} the file being written */
    this.current = null
    this.size = 0
    this._head = Buffer.alloc(RECORD_HEADER_BYTES)
    this._retentionDueMs = 0
    /** @type {Error|null} a write that failed: no record may follow it */
    this.failed = null
    /** @type {JournalCounts} */
    this.stats = { records: 0, bytes: 0, files: 0, rotated: 0, deleted: 0, deleted_records: 0, deleted_bytes: 0, torn_tails: 0, frames_journal_only: 0 }
  }

  /**
   * Takes the directory (one writer at a time: `journal.lock` holds its pid), continues jseq from the
   * last whole record of the newest file, opens a new file and applies retention.
   * @returns {this}
   */
  open () {
    if (this.fd !== null) throw new Error('journal: open() called twice')
    mkdirSync(this.dir, { recursive: true })
    this._lock()
    const files = journalFiles(this.dir)
    const newest = files.at(-1)
    if (newest !== undefined) {
      const s = scanFile(newest.path, newest.first)
      if (s.last === null) {
        // no whole record: nothing in it was ever sent (a record is written before its frame is sent),
        // and its name is the jseq to continue from, which the new file takes
        unlinkSync(newest.path)
        this.log(`journal: ${newest.name} holds no whole record (${s.size} bytes${s.magic || s.size === 0 ? '' : ', no journal header'}): removed, jseq continues at ${newest.first}`)
        this.nextJseq = newest.first
      } else {
        this.nextJseq = s.last + 1
        if (s.end < s.size) {
          this.stats.torn_tails++
          this.log(`journal: ${newest.name} has a torn tail of ${s.size - s.end} bytes at offset ${s.end}, after jseq ${s.last} (an ingester stopped in the middle of a record; left as is, readers stop there)`)
        }
      }
    }
    this._openFile(this.nextJseq)
    this.log(`journal: ${this.current} in ${this.dir}, jseq from ${this.nextJseq} (${files.length} earlier file${files.length === 1 ? '' : 's'}; rotation at ${this.fileBytes / MB} MB, retention ${this.maxBytes / MB} MB and ${this.maxAgeUs / 3600e6} h)`)
    this.retain()
    return this
  }

  _lock () {
    const path = join(this.dir, LOCK)
    const key = resolve(this.dir)
    if (HELD.has(key)) throw new Error(`journal: ${this.dir} is written by another journal of this process; one writer per journal directory`)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx')
        writeSync(fd, `${process.pid}\n`)
        closeSync(fd)
        HELD.add(key)
        return
      } catch (e) {
        if (/** @type {any} */ (e).code !== 'EEXIST') throw e
      }
      const pid = Number.parseInt(readFileSync(path, 'utf8'), 10)
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new Error(`journal: ${this.dir} is written by another ingester (pid ${pid}, ${path}); one writer per journal directory`)
      }
      this.log(`journal: taking over ${path} of a process that is gone (pid ${Number.isNaN(pid) ? '?' : pid})`)
      unlinkSync(path)
    }
    throw new Error(`journal: cannot take ${path}`)
  }

  /** @param {number} first */
  _openFile (first) {
    const name = journalFileName(first)
    this.fd = openSync(join(this.dir, name), 'ax') // a new file: never appends to one that exists
    writeSync(this.fd, MAGIC)
    this.current = name
    this.size = MAGIC.length
    this.stats.files++
  }

  /**
   * Appends one record: `payload` (a wire frame, whose header already carries `jseq`) with the next jseq,
   * in one write call. Rotates first when the record would take the file past file_mb.
   * @param {number} jseq must be `nextJseq` (the one written into the frame's header)
   * @param {Uint8Array} payload
   */
  append (jseq, payload) {
    if (this.fd === null) throw new Error('journal: append() before open() or after close()')
    if (this.failed !== null) throw new Error(`journal: an earlier write to ${this.current} failed (${this.failed.message})`)
    if (jseq !== this.nextJseq) throw new Error(`journal: append of jseq ${jseq}, expected ${this.nextJseq}`)
    const total = RECORD_HEADER_BYTES + payload.length
    const nowUs = this.nowUs()
    if (this.size > MAGIC.length && this.size + total > this.fileBytes) this._rotate(jseq)
    else if (nowUs / 1000 >= this._retentionDueMs) this.retain()
    writeRecordHeader(this._head, payload.length, crc32(payload), jseq, nowUs)
    try {
      let written = writevSync(this.fd, [this._head, payload])
      while (written < total) { // a short write (a full disk, say): the rest, or the error
        const rest = written < RECORD_HEADER_BYTES
          ? Buffer.concat([this._head.subarray(written), payload])
          : payload.subarray(written - RECORD_HEADER_BYTES)
        written += writeSync(this.fd, rest)
      }
    } catch (e) {
      // part of the record may be in the file: nothing may follow it there (readers stop at a torn tail)
      this.failed = /** @type {Error} */ (e)
      this.log(`journal: writing jseq ${jseq} to ${this.current} failed: ${this.failed.message}; the frame is not sent, and no other will be`)
      throw e
    }
    this.size += total
    this.nextJseq++
    this.stats.records++
    this.stats.bytes += total
  }

  /** @param {number} first */
  _rotate (first) {
    closeSync(/** @type {number} */ (this.fd))
    this.fd = null
    const closed = this.current
    this._openFile(first)
    this.stats.rotated++
    this.log(`journal: ${closed} reached ${this.fileBytes / MB} MB: now ${this.current}`)
    this.retain()
  }

  /**
   * Deletes the oldest files (never the current one) while all the journal's files take more than
   * max_mb, or while the oldest was last written (its newest record) more than max_age_h ago; each
   * deletion is logged with its jseq range and counted. Runs at open, at each rotation and at most once
   * a minute on append.
   */
  retain () {
    const nowUs = this.nowUs()
    this._retentionDueMs = nowUs / 1000 + RETENTION_EVERY_MS
    const files = journalFiles(this.dir).map((f) => {
      const st = statSync(f.path, { throwIfNoEntry: false })
      return { ...f, size: st?.size ?? 0, mtimeUs: (st?.mtimeMs ?? 0) * 1000 }
    })
    let total = files.reduce((a, f) => a + f.size, 0)
    for (let i = 0; i < files.length - 1; i++) {
      const f = files[i]
      if (f.name === this.current) break
      const ageUs = nowUs - f.mtimeUs
      const why = total > this.maxBytes
        ? `the journal takes ${(total / MB).toFixed(1)} MB, over max_mb ${this.maxBytes / MB}`
        : ageUs > this.maxAgeUs ? `last written ${(ageUs / 3600e6).toFixed(1)} h ago, over max_age_h ${this.maxAgeUs / 3600e6}` : null
      if (why === null) break
      const last = files[i + 1].first - 1 // the next file continues from this one's last whole record
      try {
        unlinkSync(f.path)
      } catch (e) {
        if (/** @type {any} */ (e).code !== 'ENOENT') throw e
      }
      total -= f.size
      this.stats.deleted++
      this.stats.deleted_records += last - f.first + 1
      this.stats.deleted_bytes += f.size
      this.log(`journal: deleted ${f.name} (jseq ${f.first}..${last}, ${f.size} bytes): ${why}`)
    }
  }

  /** @returns {JournalCounts} */
  counts () {
    return { ...this.stats }
  }

  /** Closes the current file and releases the directory. */
  close () {
    if (this.fd === null) return
    closeSync(this.fd)
    this.fd = null
    HELD.delete(resolve(this.dir))
    try {
      unlinkSync(join(this.dir, LOCK))
    } catch {}
  }
}

/** @param {number} pid */
function alive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return /** @type {any} */ (e).code === 'EPERM'
  }
}
