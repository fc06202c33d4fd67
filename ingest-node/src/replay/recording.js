// Reads recorded raw exchange messages lazily, line by line, from one or more files played back to
// back. Line formats:
//   `<ns since epoch> <json>` (shared/data/binance-ws),
//   `<ISO 8601 timestamp> <json>` (Tardis HTTP API slices),
//   cryptofeed captures (shared/data/cryptofeed-ws): `<epoch seconds>: <json received>` messages, plus
//   `<url> <-> <ts>` (connect) and `<url> <- <ts>: <json sent>` lines, which are skipped and counted
//   as `control` (the replay server answers the client's own subscribe messages instead).
// gzip is detected by its magic bytes. A malformed line is counted (by reason) and logged with
// file:line, and reading goes on. A file that cannot be read (missing, not a file, empty, a truncated or
// corrupt gzip, a "line" longer than maxLineBytes) is an error naming it (and the line it stopped after).
import { createReadStream } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { createGunzip } from 'node:zlib'
import { isAscii } from 'node:buffer'
import { Worker } from 'node:worker_threads'
import { setImmediate as turn } from 'node:timers/promises'
import { basename } from 'node:path'
import { isoToUs } from '../convert.js'
import { templatedFrame } from './frames.js'
import { silentLog } from '../log.js'

/**
 * @typedef {object} RecordedMessage
 * @property {string} file
 * @property {number} line 1-based line number in that file
 * @property {number} tsUs local receive time, µs since epoch
 * @property {string} raw the message text exactly as recorded
 * @property {any} data the parsed message
 */

/**
 * @typedef {object} RecordingStats
 * @property {number} files files opened
 * @property {number} lines lines read (all)
 * @property {number} messages good lines yielded
 * @property {number} empty blank lines skipped
 * @property {number} bad malformed lines skipped
 * @property {Record<string, number>} badReasons malformed lines per reason (no_separator, bad_timestamp, invalid_json, not_an_object)
 * @property {number} control cryptofeed connect / sent lines skipped (not malformed)
 */

/** @returns {RecordingStats} */
export const newRecordingStats = () => ({ files: 0, lines: 0, messages: 0, empty: 0, bad: 0, badReasons: {}, control: 0 })

/** Longest line accepted (bytes); a longer one means the file is not a recording. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024

/**
 * Checks that every file can be read as a recording before anything is replayed: it exists, is a file,
 * and is not empty. Throws naming the first one that is not.
 * @param {string[]} files
 */
export async function checkRecordings (files) {
  if (!Array.isArray(files) || files.length === 0) throw new Error('recording: no files given')
  for (const file of files) {
    let st
    try {
      st = await stat(file)
    } catch (e) {
      throw new Error(`recording: cannot read ${file}: ${e.code ?? e.message}`)
    }
    if (!st.isFile()) throw new Error(`recording: cannot read ${file}: not a file`)
    if (st.size === 0) throw new Error(`recording: ${file} is empty (0 bytes)`)
  }
}

/** @param {string} path */
async function isGzip (path) {
  let fh
  try {
    fh = await open(path, 'r')
  } catch (e) {
    throw new Error(`recording: cannot read ${path}: ${e.code ?? e.message}`)
  }
  try {
    const { bytesRead, buffer } = await fh.read(Buffer.alloc(2), 0, 2, 0)
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b
  } finally {
    await fh.close()
  }
}

/**
 * A piece of a file: whole lines as bytes, in a buffer of its own (transferable to another thread).
 * Line k is bytes[starts[k], ends[k]) (its \n and a \r before it left out).
 * @typedef {object} LinePiece
 * @property {Buffer} bytes
 * @property {number} n lines
 * @property {Int32Array} starts
 * @property {Int32Array} ends
 */

/**
 * The lines of a file (gzip or plain), lazily, a piece per 256 KiB read, with back-pressure (the stream
 * is paused while the consumer is busy). Splits bytes, not text: each piece is decoded (or not) by
 * whoever takes it, possibly in another thread (readRecordingBatches).
 * @param {string} path
 * @param {{maxLineBytes?: number}} [options]
 * @returns {AsyncGenerator<LinePiece>}
 */
export async function * readLinePieces (path, { maxLineBytes = MAX_LINE_BYTES } = {}) {
  const gz = await isGzip(path)
  const raw = createReadStream(path, { highWaterMark: PIECE_BYTES })
  const input = gz ? raw.pipe(createGunzip({ chunkSize: PIECE_BYTES })) : raw
  if (gz) raw.on('error', (e) => input.destroy(e))
  /** @type {Buffer[]} the line begun in earlier chunks */
  let rest = []
  let restBytes = 0
  let lines = 0
  try {
    for await (const chunk of input) {
      const last = chunk.lastIndexOf(10)
      if (last === -1) {
        rest.push(chunk)
        restBytes += chunk.length
      } else {
        const piece = splitLines(joined(rest, restBytes, chunk.subarray(0, last + 1)))
        lines += piece.n
        yield piece
        rest = last + 1 < chunk.length ? [chunk.subarray(last + 1)] : []
        restBytes = chunk.length - last - 1
      }
      if (restBytes > maxLineBytes) throw new Error(`line ${lines + 1} is longer than ${maxLineBytes} bytes (not a recording?)`)
    }
    if (restBytes > 0) yield splitLines(joined(rest, restBytes, null), false)
  } catch (e) {
    const what = gz && e.code?.startsWith?.('Z_') ? 'a truncated or corrupt gzip' : gz ? 'gzip' : null
    throw new Error(`recording: cannot read ${path}${what === null ? '' : ` (${what})`} after line ${lines}: ${e.message}`)
  } finally {
    raw.destroy()
    if (gz) input.destroy()
  }
}

/** Bytes read (and decompressed) at a time: a piece of lines is about this long. */
const PIECE_BYTES = 256 * 1024

/**
 * `parts` then `tail` copied into one new buffer of its own.
 * @param {Buffer[]} parts @param {number} partBytes @param {Buffer|null} tail
 */
function joined (parts, partBytes, tail) {
  const out = Buffer.allocUnsafeSlow(partBytes + (tail?.length ?? 0))
  let at = 0
  for (const p of parts) at += p.copy(out, at)
  if (tail !== null) tail.copy(out, at)
  return out
}

/**
 * The lines of `bytes`: each ends at a \n, or (`terminated` false: the end of a file without one) the
 * last at the end.
 * @param {Buffer} bytes
 * @returns {LinePiece}
 */
function splitLines (bytes, terminated = true) {
  let starts = new Int32Array(Math.max(16, bytes.length >> 7))
  let ends = new Int32Array(starts.length)
  let n = 0
  for (let from = 0; from < bytes.length;) {
    let nl = bytes.indexOf(10, from)
    if (nl === -1) {
      if (terminated) break
      nl = bytes.length
    }
    if (n === starts.length) {
      starts = grown(starts)
      ends = grown(ends)
    }
    starts[n] = from
    ends[n] = nl > from && bytes[nl - 1] === 13 ? nl - 1 : nl
    n++
    from = nl + 1
  }
  return { bytes, n, starts, ends }
}

/** @param {Int32Array} a */
function grown (a) {
  const b = new Int32Array(a.length * 2)
  b.set(a)
  return b
}

/**
 * Bytes decoded at a time: the strings stay below V8's large-object size (128 KiB), which costs 30 times
 * more per byte to allocate (measured: 230 µs for a 256 KiB string, 7 µs for 64 KiB).
 */
const TEXT_WINDOW = 60 * 1024

/**
 * A function giving the text of bytes[s, e), for s, e within one line. A piece that is all ASCII is
 * decoded a window at a time (its lines are slices of the window's string); any other, a line at a
 * time (UTF-8; a line starts and ends on a character boundary).
 * @param {Buffer} bytes
 * @param {boolean} [ascii] already known
 * @returns {(s: number, e: number) => string}
 */
function textOf (bytes, ascii = isAscii(bytes)) {
  if (!ascii) return (s, e) => bytes.toString('utf8', s, e)
  let text = ''
  let from = 0
  let to = 0
  return (s, e) => {
    if (s < from || e > to) {
      from = s
      to = Math.min(bytes.length, Math.max(e, s + TEXT_WINDOW))
      text = bytes.toString('latin1', from, to)
    }
    return text.slice(s - from, e - from)
  }
}

/**
 * Lines of a file (gzip or plain) as text, lazily, a batch per piece read. Handles \n and \r\n.
 * @param {string} path
 * @param {{maxLineBytes?: number}} [options]
 * @returns {AsyncGenerator<string[]>}
 */
export async function * readLineBatches (path, options) {
  for await (const { bytes, n, starts, ends } of readLinePieces(path, options)) {
    const text = textOf(bytes)
    const batch = new Array(n)
    for (let k = 0; k < n; k++) batch[k] = text(starts[k], ends[k])
    yield batch
  }
}

/**
 * Lines of a file one by one (readLineBatches, flattened).
 * @param {string} path
 * @param {{maxLineBytes?: number}} [options]
 * @returns {AsyncGenerator<string>}
 */
export async function * readLines (path, options) {
  for await (const batch of readLineBatches(path, options)) yield * batch
}

/**
 * Timestamp field of a line -> µs since epoch, or NaN.
 * Digits: by magnitude ns (>= 1e17), µs (>= 1e14) or ms; otherwise ISO 8601.
 * @param {string} s
 */
export function parseTimestampUs (s) {
  if (/^\d+$/.test(s)) {
    if (s.length >= 18) return Number(s.slice(0, -3)) // ns -> µs (string cut keeps precision)
    const v = Number(s)
    if (v >= 1e14) return v
    return v * 1000
  }
  return isoToUs(s)
}

const EPOCH_SECONDS_RE = /^(\d{9,11})(?:\.(\d{1,9}))?:$/
const CRYPTOFEED_CONTROL_RE = /^wss?:\/\/\S+ (<->|<-) \d/

/**
 * cryptofeed's `<epoch seconds>:` prefix (fraction of any length) -> µs since epoch, or NaN. String
 * arithmetic: 1626993367.875267 * 1e6 in floating point can be off by one µs.
 * @param {string} s the first field of the line, colon included
 */
export function parseEpochSecondsUs (s) {
  const m = EPOCH_SECONDS_RE.exec(s)
  if (m === null) return NaN
  return Number(m[1]) * 1e6 + Number(((m[2] ?? '') + '000000').slice(0, 6))
}

/** What parseLine says of a malformed line (its text starts with one of these), by reason. */
const BAD = {
  no_separator: 'expected "<timestamp> <json>"',
  bad_timestamp: 'bad timestamp',
  invalid_json: 'invalid JSON',
  not_an_object: 'the JSON is not an object'
}

/**
 * The reason key (BAD) of a parseLine problem.
 * @param {string} problem
 */
export const badReason = (problem) => Object.keys(BAD).find((k) => problem.startsWith(BAD[k])) ?? 'other'

/**
 * Parses one recording line. Returns the message, `{control}` for a cryptofeed connect / sent line, or a
 * string saying what is wrong.
 * @param {string} line
 * @returns {{tsUs: number, raw: string, data: any} | {control: 'connect'|'sent'} | string}
 */
export function parseLine (line) {
  const cf = CRYPTOFEED_CONTROL_RE.exec(line)
  if (cf !== null) return { control: cf[1] === '<->' ? 'connect' : 'sent' }
  const sp = line.indexOf(' ')
  if (sp <= 0) return BAD.no_separator
  const head = line.slice(0, sp)
  const tsUs = head.endsWith(':') ? parseEpochSecondsUs(head) : parseTimestampUs(head)
  if (!Number.isFinite(tsUs)) return `${BAD.bad_timestamp} ${JSON.stringify(line.slice(0, Math.min(sp, 40)))}`
  const raw = line.slice(sp + 1)
  let data
  try {
    data = JSON.parse(raw)
  } catch (e) {
    return `${BAD.invalid_json}: ${e.message}`
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return BAD.not_an_object
  return { tsUs, raw, data }
}

/**
 * Where each line of a piece in the common form `<18-19 digit ns> {...` has its JSON, and its µs (the
 * ns digits but the last 3, as parseTimestampUs's Number(s.slice(0, -3))); -1 (µs NaN) for any other
 * line, which parseLine reads. Runs in the reading thread (recording-worker.js).
 * @param {LinePiece} piece
 * @returns {{jsonAt: Int32Array, tsUs: Float64Array}}
 */
export function quickStamps ({ bytes, n, starts, ends }) {
  const jsonAt = new Int32Array(n).fill(-1)
  const tsUs = new Float64Array(n).fill(NaN)
  for (let k = 0; k < n; k++) {
    const s = starts[k]
    const e = ends[k]
    const sp = s + 19 < e && bytes[s + 18] === 32 ? s + 18 : s + 20 < e && bytes[s + 19] === 32 ? s + 19 : -1
    if (sp === -1 || bytes[sp + 1] !== 123) continue // '{'
    let us = 0
    let i = s
    for (; i < sp; i++) {
      const d = bytes[i] - 48
      if (d < 0 || d > 9) break
      if (i < sp - 3) us = us * 10 + d
    }
    // not all digits; or beyond the year 2255 (> 2^53 µs: parseLine's string cut)
    if (i < sp || us > Number.MAX_SAFE_INTEGER) continue
    jsonAt[k] = sp + 1
    tsUs[k] = us
  }
  return { jsonAt, tsUs }
}

/** The parsed JSON text when it is an object (not an array), else null. @param {string} text */
function parsedObject (text) {
  let data
  try {
    data = JSON.parse(text)
  } catch {
    return null
  }
  return data !== null && typeof data === 'object' && !Array.isArray(data) ? data : null
}

/** Pieces the reading thread reads ahead of the ones taken. */
const PIECES_AHEAD = 16

/** A turn of the event loop at least this often (ms) while pieces are taken without waiting. */
const TURN_EVERY_MS = 10

/**
 * readLinePieces of one file at a time, with each piece's quickStamps and (ASCII pieces) scanTemplates,
 * from a worker thread (recording-worker.js): reading, decompressing, splitting and matching the
 * templated frames (frames.js) run beside the thread that parses. The
 * worker keeps the process alive only while a piece is waited for.
 */
function openPieceReader () {
  // pieces taken of the current file, counted here and read there (a postMessage per piece taken cost
  // 0.1-0.5 ms of this thread each)
  const taken = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(new URL('./recording-worker.js', import.meta.url), { workerData: { taken, ahead: PIECES_AHEAD } })
  worker.unref()
  /** @type {any[]} */
  const inbox = []
  /** @type {(() => void)|null} */
  let wake = null
  const put = (m) => {
    inbox.push(m)
    if (wake !== null) { const w = wake; wake = null; w() }
  }
  worker.on('message', put)
  worker.on('error', (e) => put({ error: `the recording reader thread failed: ${e.message}` }))
  worker.on('exit', (code) => put({ error: `the recording reader thread exited (code ${code})` }))
  return {
    /**
     * @param {string} file
     * @returns {AsyncGenerator<LinePiece & {ascii: boolean, jsonAt: Int32Array, tsUs: Float64Array, scan: import('./frames.js').TemplateScan|null}>}
     */
    async * read (file) {
      Atomics.store(taken, 0, 0)
      worker.postMessage({ file })
      let turnedAt = performance.now()
      for (;;) {
        if (inbox.length === 0) {
          worker.ref()
          while (inbox.length === 0) await new Promise((resolve) => { wake = () => resolve(undefined) })
          worker.unref()
          turnedAt = performance.now()
        } else if (performance.now() - turnedAt >= TURN_EVERY_MS) {
          // a consumer that never waits otherwise (the replay server at max speed) still lets timers,
          // sockets and signals run
          await turn()
          turnedAt = performance.now()
        }
        const m = inbox.shift()
        if (m.error !== undefined) throw new Error(m.error)
        if (m.done === true) return
        Atomics.add(taken, 0, 1)
        Atomics.notify(taken, 0)
        m.bytes = Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.length)
        yield m
      }
    },
    close: () => { worker.removeAllListeners('exit'); return worker.terminate() }
  }
}

/**
 * @typedef {object} ReadRecordingOptions
 * @property {RecordingStats} [stats] counters to update
 * @property {import('../log.js').Log} [log]
 * @property {number} [maxBadLineLogs] bad lines logged one by one (default 20); later ones only counted
 */

/**
 * Every good message of the files, in order, played back to back, a batch per piece read (the direct
 * replay takes them so: one turn of its async generators per batch, not per message). The files are
 * read, decompressed and split into lines in a worker thread, which also finds the templated frames
 * (frames.js); this one decodes, makes the templated frames' objects and parses the other lines.
 * @param {string[]} files
 * @param {ReadRecordingOptions} [options]
 * @returns {AsyncGenerator<RecordedMessage[]>}
 */
export async function * readRecordingBatches (files, { stats = newRecordingStats(), log = silentLog, maxBadLineLogs = 20 } = {}) {
  if (!Array.isArray(files) || files.length === 0) throw new Error('recording: no files given')
  /** @type {ReturnType<typeof openPieceReader>|null} */
  let reader = null
  try {
    for (const file of files) {
      stats.files++
      let lineNo = 0
      if ((await stat(file).catch(() => null))?.size === 0) throw new Error(`recording: ${file} is empty (0 bytes)`)
      reader ??= openPieceReader()
      const before = { lines: stats.lines, messages: stats.messages, bad: stats.bad }
      const name = basename(file)
      for await (const { bytes, n, starts, ends, ascii, jsonAt, tsUs, scan } of reader.read(file)) {
        const text = textOf(bytes, ascii)
        const batch = []
        for (let k = 0; k < n; k++) {
          lineNo++
          stats.lines++
          const at = jsonAt[k]
          if (at !== -1) {
            const raw = text(at, ends[k])
            const data = scan !== null && scan.which[k] !== -1 ? templatedFrame(scan, k, text) : parsedObject(raw)
            if (data !== null) {
              stats.messages++
              batch.push({ file: name, line: lineNo, tsUs: tsUs[k], raw, data })
              continue
            }
          }
          const line = text(starts[k], ends[k])
          if (line.trim() === '') {
            stats.empty++
            continue
          }
          const parsed = parseLine(line)
          if (typeof parsed === 'string') {
            stats.bad++
            const reason = badReason(parsed)
            stats.badReasons[reason] = (stats.badReasons[reason] ?? 0) + 1
            if (stats.bad <= maxBadLineLogs) {
              log(`recording: ${file}:${lineNo}: malformed line skipped (${parsed}): ${JSON.stringify(line.slice(0, 120))}`)
              if (stats.bad === maxBadLineLogs) log(`recording: ${maxBadLineLogs} malformed lines logged; further ones are only counted`)
            }
            continue
          }
          if ('control' in parsed) {
            stats.control++
            continue
          }
          stats.messages++
          batch.push({ file: name, line: lineNo, tsUs: parsed.tsUs, raw: parsed.raw, data: parsed.data })
        }
        if (batch.length > 0) yield batch
      }
      if (stats.messages === before.messages) {
        log(`recording: ${file}: no usable message in its ${stats.lines - before.lines} line(s) (${stats.bad - before.bad} malformed)`)
      }
    }
  } finally {
    reader?.close().catch(() => {})
  }
}

/**
 * Every good message of the files, one by one (readRecordingBatches, flattened).
 * @param {string[]} files
 * @param {ReadRecordingOptions} [options]
 * @returns {AsyncGenerator<RecordedMessage>}
 */
export async function * readRecording (files, options) {
  for await (const batch of readRecordingBatches(files, options)) yield * batch
}
