// Reads recorded raw exchange messages lazily, line by line, from one or more files played back to
// back. Line formats:
//   `<ns since epoch> <json>` (shared/data/binance-ws),
//   `<ISO 8601 timestamp> <json>` (Tardis HTTP API slices),
//   cryptofeed captures (shared/data/cryptofeed-ws): `<epoch seconds>: <json received>` messages, plus
//   `<url> <-> <ts>` (connect) and `<url> <- <ts>: <json sent>` lines, which are skipped and counted
//   as `control` (the replay server answers the client's own subscribe messages instead).
// gzip is detected by its magic bytes. A malformed line is counted (by reason) and logged with
// file:line, and reading goes on. A file that cannot be read (missing, not a file, empty, a truncated or
// corrupt gzip, a "line" longer than maxLineChars) is an error naming it (and the line it stopped after).
import { createReadStream } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { createGunzip } from 'node:zlib'
import { StringDecoder } from 'node:string_decoder'
import { basename } from 'node:path'
import { isoToUs } from '../convert.js'
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

/** Longest line accepted (characters); a longer one means the file is not a recording. */
export const MAX_LINE_CHARS = 64 * 1024 * 1024

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
 * Lines of a file (gzip or plain), lazily, a batch per piece read (256 KiB), with back-pressure (the
 * stream is paused while the consumer is busy). Handles \n and \r\n.
 * @param {string} path
 * @param {{maxLineChars?: number}} [options]
 * @returns {AsyncGenerator<string[]>}
 */
export async function * readLineBatches (path, { maxLineChars = MAX_LINE_CHARS } = {}) {
  const gz = await isGzip(path)
  const raw = createReadStream(path, { highWaterMark: 256 * 1024 })
  const input = gz ? raw.pipe(createGunzip({ chunkSize: 256 * 1024 })) : raw
  if (gz) raw.on('error', (e) => input.destroy(e))
  const decoder = new StringDecoder('utf8')
  let rest = ''
  let lines = 0
  try {
    for await (const chunk of input) {
      const text = decoder.write(chunk)
      const batch = []
      let start = 0
      let nl = text.indexOf('\n')
      if (nl !== -1 && rest.length > 0) {
        // the line begun in the previous piece: joined on its own, the piece itself is not copied
        const line = rest + text.slice(0, nl)
        batch.push(line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line)
        start = nl + 1
        rest = ''
        nl = text.indexOf('\n', start)
      }
      for (; nl !== -1; nl = text.indexOf('\n', start)) {
        const end = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl
        batch.push(text.slice(start, end))
        start = nl + 1
      }
      lines += batch.length
      rest = start === 0 ? rest + text : text.slice(start)
      if (batch.length > 0) yield batch
      if (rest.length > maxLineChars) throw new Error(`line ${lines + 1} is longer than ${maxLineChars} characters (not a recording?)`)
    }
    rest += decoder.end()
    if (rest.length > 0) yield [rest.endsWith('\r') ? rest.slice(0, -1) : rest]
  } catch (e) {
    const what = gz && e.code?.startsWith?.('Z_') ? 'a truncated or corrupt gzip' : gz ? 'gzip' : null
    throw new Error(`recording: cannot read ${path}${what === null ? '' : ` (${what})`} after line ${lines}: ${e.message}`)
  } finally {
    raw.destroy()
    if (gz) input.destroy()
  }
}

/**
 * Lines of a file one by one (readLineBatches, flattened).
 * @param {string} path
 * @param {{maxLineChars?: number}} [options]
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
 * The common line `<18-19 digit ns> {json object}` -> its RecordedMessage, in one object; null for any
 * other line (parseLine then decides, and reports a malformed one exactly as before).
 * @param {string} line @param {string} file @param {number} lineNo
 * @returns {RecordedMessage|null}
 */
function fastRecord (line, file, lineNo) {
  const sp = line.indexOf(' ')
  if (sp !== 18 && sp !== 19) return null
  if (line.charCodeAt(sp + 1) !== 123) return null // '{'
  // µs = the ns digits but the last 3 (< 2^53: exact), as parseTimestampUs's Number(s.slice(0, -3))
  let us = 0
  const digits = sp - 3
  for (let k = 0; k < sp; k++) {
    const d = line.charCodeAt(k) - 48
    if (d < 0 || d > 9) return null
    if (k < digits) us = us * 10 + d
  }
  if (us > Number.MAX_SAFE_INTEGER) return null // beyond the year 2255: parseLine's string cut
  const raw = line.slice(sp + 1)
  let data
  try {
    data = JSON.parse(raw)
  } catch {
    return null
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return null
  return { file, line: lineNo, tsUs: us, raw, data }
}

/**
 * @typedef {object} ReadRecordingOptions
 * @property {RecordingStats} [stats] counters to update
 * @property {import('../log.js').Log} [log]
 * @property {number} [maxBadLineLogs] bad lines logged one by one (default 20); later ones only counted
 */

/**
 * Every good message of the files, in order, played back to back, a batch per piece read (the direct
 * replay takes them so: one turn of its async generators per batch, not per message).
 * @param {string[]} files
 * @param {ReadRecordingOptions} [options]
 * @returns {AsyncGenerator<RecordedMessage[]>}
 */
export async function * readRecordingBatches (files, { stats = newRecordingStats(), log = silentLog, maxBadLineLogs = 20 } = {}) {
  if (!Array.isArray(files) || files.length === 0) throw new Error('recording: no files given')
  for (const file of files) {
    stats.files++
    let lineNo = 0
    if ((await stat(file).catch(() => null))?.size === 0) throw new Error(`recording: ${file} is empty (0 bytes)`)
    const before = { lines: stats.lines, messages: stats.messages, bad: stats.bad }
    const name = basename(file)
    for await (const lines of readLineBatches(file)) {
      const batch = []
      for (const line of lines) {
        lineNo++
        stats.lines++
        const fast = fastRecord(line, name, lineNo)
        if (fast !== null) {
          stats.messages++
          batch.push(fast)
          continue
        }
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
