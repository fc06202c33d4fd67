// Normalized message (tardis-dev shape) -> one row of a wire frame. One writer per message type, made
// from proto/wire.json: each frame's `tardis` map names the message field every column is read from,
// so a column (or a data type) added there is written here without a line of this file changing.
import { writeI64 } from './wire/builder.js'
import { schema, frameSpec } from './wire/schema.js'

/**
 * @typedef {Record<string, any> & { type: string }} Message a tardis-dev normalized message, or one of
 *   our control messages ({type: 'end', reason, error}); fast path: numeric `timestampUs` / `localTimestampUs`
 * @typedef {import('./wire/builder.js').FrameBuilder} FrameBuilder
 */

/**
 * Microseconds since epoch of a tardis Date (ms Date plus its `μs` property, 0-999), an ISO string, or a number
 * (taken as µs). undefined/null/invalid -> NaN (missing).
 * @param {any} d
 */
export function toUs (d) {
  if (d == null) return NaN
  if (typeof d === 'number') return d
  if (d instanceof Date) {
    const ms = d.valueOf()
    return ms * 1000 + (d.μs ?? 0)
  }
  if (typeof d === 'string') return isoToUs(d)
  return NaN
}

const ISO_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$/

/**
 * ISO 8601 -> µs since epoch, keeping up to 6 fractional digits (Date.parse keeps 3). NaN if not ISO.
 * @param {string} s
 */
export function isoToUs (s) {
  const m = ISO_RE.exec(s)
  if (m === null) return NaN
  const baseMs = Date.parse(m[1] + (m[3] ?? 'Z'))
  if (Number.isNaN(baseMs)) return NaN
  const frac = m[2] ?? ''
  const us = frac === '' ? 0 : Number((frac + '000000').slice(0, 6))
  return baseMs * 1000 + us
}

/**
 * Date with tardis' extra `μs` property from µs since epoch.
 * @param {number} us
 */
export function dateFromUs (us) {
  const ms = Math.floor(us / 1000)
  const d = new Date(ms)
  d.μs = us - ms * 1000
  return d
}

const num = (v) => (typeof v === 'number' ? v : v == null ? NaN : Number(v))
const str = (v) => (v == null ? '' : String(v))

/**
 * @typedef {object} RowWriter
 * @property {string} frameType
 * @property {(m: Message) => string} key builder key (frame type, plus header fields that must be equal within a frame)
 * @property {(m: Message) => Record<string, any>} header type-specific header fields
 * @property {(b: FrameBuilder, m: Message) => void} write
 * @property {number} [index] position in `writers` (set below): lets the batcher count messages per
 *   type in a typed array on the hot path
 */

/**
 * The source of one frame type's row writer `(b, m) => void`, from the tardis names in wire.json: `sym`
 * <- m.exchange + m.symbol; an i64 column <- toUs(m[field]) (or the numeric `<field>Us` fast path, as
 * the synthetic source sends); f64 <- a number (NaN if missing); an enum <- its index (0 = unknown if
 * missing or not a value of the enum); str <- the text ("" if missing); a per-level column (book levels)
 * <- `array[j].field` for j < its width, a missing level left missing.
 * @param {import('./wire/schema.js').FrameSpec} spec
 * @returns {string}
 */
export function writerSource (spec) {
  const q = JSON.stringify
  /**
   * @param {import('./wire/schema.js').ColumnSpec} col
   * @param {string} obj the expression holding the field (`m`, or `e` for a level)
   * @param {string} field the tardis field name
   * @param {string} at the value index
   */
  const store = (col, obj, field, at) => {
    const v = `${obj}[${q(field)}]`
    const dst = `c[${q(col.name)}][${at}]`
    if (col.dtype === 'i64') {
      const fast = `${obj}[${q(field + 'Us')}]`
      return `writeI64(h[${q(col.name)}], ${at}, ${fast} !== undefined ? ${fast} : toUs(${v}))`
    }
    if (col.dtype === 'str') return `${dst} = str(${v})`
    if (col.enumIndex !== null) return `${dst} = enums[${q(col.name)}].get(${v}) ?? 0`
    return `${dst} = num(${v})`
  }
  const lines = ['const i = b.addRow()', 'const c = b.cols', 'const h = b.i64']
  /** @type {Map<string, import('./wire/schema.js').ColumnSpec[]>} `array|widthField` -> its per-level columns */
  const levels = new Map()
  for (const col of spec.columns) {
    if (col.name === 'sym') {
      lines.unshift('const sym = b.symbolIndex(m.exchange, m.symbol)') // before addRow, as the row's other columns
      lines.push('c.sym[i] = sym')
    } else if (col.tardis === null) {
      throw new Error(`convert: ${spec.type} column ${col.name} has no tardis name in wire.json`)
    } else if (col.tardis.array === null) {
      lines.push(store(col, 'm', col.tardis.field, 'i'))
    } else {
      const key = `${col.tardis.array}|${col.widthField}`
      levels.set(key, [...(levels.get(key) ?? []), col])
    }
  }
  for (const cols of levels.values()) {
    const array = /** @type {import('./wire/schema.js').TardisPath} */ (cols[0].tardis).array
    lines.push(
      `{ const a = m[${q(array)}] ?? []`,
      `  const w = b.extraHeader[${q(cols[0].widthField)}]`,
      '  const base = i * w',
      '  for (let j = 0; j < w; j++) {',
      '    const e = a[j]',
      '    if (e == null) continue',
      ...cols.map((col) => `    ${store(col, 'e', /** @type {import('./wire/schema.js').TardisPath} */ (col.tardis).field, 'base + j')}`),
      '  }',
      '}'
    )
  }
  return lines.join('\n')
}

/**
 * The row writer of one frame type made from tardis-dev messages (wire.json `tardis` map): the
 * builder key and type-specific header come from the header fields' tardis names (book_snapshot:
 * depth, interval), the row from writerSource, compiled once so that the hot path is plain property
 * reads and typed-array stores.
 * @param {import('./wire/schema.js').FrameSpec} spec
 * @returns {RowWriter}
 */
export function makeWriter (spec) {
  const type = spec.type
  const fields = spec.header.map((name) => {
    const t = spec.headerTardis[name]
    if (t === undefined) throw new Error(`convert: ${type} header field ${name} has no tardis name in wire.json`)
    return [name, t.field]
  })
  const enums = Object.fromEntries(spec.columns.filter((c) => c.enumIndex !== null).map((c) => [c.name, c.enumIndex]))
  // eslint-disable-next-line no-new-func
  const write = new Function('writeI64', 'toUs', 'num', 'str', 'enums', `return function write_${type} (b, m) {\n${writerSource(spec)}\n}`)(writeI64, toUs, num, str, enums)
  return {
    frameType: type,
    key: fields.length === 0 ? () => type : (m) => `${type}:${fields.map(([, f]) => m[f]).join(':')}`,
    header: (m) => Object.fromEntries(fields.map(([name, f]) => [name, m[f]])),
    write
  }
}

/**
 * A row writer per data frame type made from tardis-dev messages, by the tardis message type of the
 * same name (trade, book_snapshot, derivative_ticker, liquidation, option_summary). A `disconnect` is a
 * control message, written by writeDisconnect.
 * @type {Record<string, RowWriter>}
 */
export const writers = Object.assign(Object.create(null), Object.fromEntries([...schema.frames.values()]
  .filter((spec) => spec.fromTardis && spec.columns.length > 0 && spec.type !== 'disconnect')
  .map((spec) => [spec.type, makeWriter(spec)]))) // no prototype: a message of type "constructor" has no writer

/** Message types that have a writer, in `writers` order (`writers[WRITER_TYPES[i]].index === i`). */
export const WRITER_TYPES = Object.keys(writers)
WRITER_TYPES.forEach((type, i) => { writers[type].index = i })

/** The field of a disconnect message its rows' local_timestamp is read from (wire.json), and its µs fast path. */
const DISCONNECT_LOCAL = /** @type {import('./wire/schema.js').TardisPath} */ (frameSpec('disconnect').columns.find((c) => c.name === 'local_timestamp')?.tardis).field
const DISCONNECT_LOCAL_US = `${DISCONNECT_LOCAL}Us`

/**
 * Writes the rows of one disconnect message: one per symbol of the dropped connection (the message's
 * `symbols`, else the subscribed symbols of its exchange), symbols upper-cased (exchange-native ids).
 * @param {FrameBuilder} b a 'disconnect' builder
 * @param {Message} m
 * @param {string[]} fallbackSymbols
 * @returns {number} rows written
 */
export function writeDisconnect (b, m, fallbackSymbols) {
  const symbols = Array.isArray(m.symbols) && m.symbols.length > 0 ? m.symbols : fallbackSymbols
  const fast = m[DISCONNECT_LOCAL_US]
  const local = fast !== undefined ? fast : toUs(m[DISCONNECT_LOCAL])
  for (const s of symbols) {
    const sym = b.symbolIndex(m.exchange, String(s).toUpperCase())
    const i = b.addRow()
    b.cols.sym[i] = sym
    writeI64(b.i64.local_timestamp, i, local)
  }
  return symbols.length
}
