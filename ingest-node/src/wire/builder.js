// Columnar accumulation of rows for one frame type: typed arrays that grow, strings collected and
// encoded once at build time. Generic over wire.json; converters write columns directly for speed.
import { endianness } from 'node:os'
import { schema as defaultSchema, frameSpec, columnWidth, typedArrayFor, INT64_MIN } from './schema.js'
import { assembleFrame, encodeStrings } from './codec.js'

if (endianness() !== 'LE') throw new Error('wire: this encoder writes typed arrays as-is and needs a little-endian CPU')

const TWO_32 = 4294967296

/**
 * Writes a Number (an integer below 2^53 in magnitude, e.g. microseconds since epoch) into an i64
 * column through its Int32Array alias, without allocating a BigInt. Non-finite (NaN, undefined) -> missing.
 * @param {Int32Array} halves the column's Int32Array alias (2 entries per value)
 * @param {number} idx value index (row * width + j)
 * @param {number} v
 */
export function writeI64 (halves, idx, v) {
  if (v === v && v !== Infinity && v !== -Infinity && v !== undefined) { // eslint-disable-line no-self-compare
    halves[2 * idx] = v | 0
    halves[2 * idx + 1] = Math.floor(v / TWO_32)
  } else {
    halves[2 * idx] = 0
    halves[2 * idx + 1] = -2147483648
  }
}

/** @param {import('./schema.js').ColumnSpec} col */
function missingOf (col) {
  if (col.dtype === 'f64') return NaN
  if (col.dtype === 'i64') return INT64_MIN
  return 0
}

export class FrameBuilder {
  /**
   * @param {string} type frame type from wire.json
   * @param {Record<string, any>} [extraHeader] type-specific header fields (e.g. depth, interval_ms)
   * @param {{capacity?: number, schema?: import('./schema.js').WireSchema}} [options]
   */
  constructor (type, extraHeader = {}, { capacity = 1024, schema = defaultSchema } = {}) {
    this.schema = schema
    this.spec = frameSpec(type, schema)
    this.type = type
    this.extraHeader = { ...extraHeader }
    this.widths = this.spec.columns.map((c) => columnWidth(c, { type, ...this.extraHeader }))
    /** rows so far */
    this.n = 0
    this.capacity = Math.max(1, capacity)
    /** @type {Record<string, any>} column name -> typed array (capacity*width) or string[] */
    this.cols = Object.create(null)
    /** @type {Record<string, Int32Array>} i64 column name -> Int32Array alias, for writeI64 */
    this.i64 = Object.create(null)
    /** @type {[string, string][]} */
    this.symbols = []
    /** @type {Map<string, Map<string, number>>} */
    this._symIndex = new Map()
    /** @type {number|null} monotonic µs at which the oldest row was added */
    this.recvMonoUs = null
    this._alloc(this.capacity, 0)
  }

  /** @param {number} capacity @param {number} keep rows to copy over */
  _alloc (capacity, keep) {
    this.spec.columns.forEach((col, ci) => {
      const width = this.widths[ci]
      if (col.dtype === 'str') {
        if (this.cols[col.name] === undefined) this.cols[col.name] = []
        return
      }
      const T = typedArrayFor(col.dtype)
      const next = new T(capacity * width)
      const missing = missingOf(col)
      if (missing !== 0) next.fill(missing, keep * width)
      const prev = this.cols[col.name]
      if (prev !== undefined && keep > 0) next.set(prev.subarray(0, keep * width))
      this.cols[col.name] = next
      if (col.dtype === 'i64') this.i64[col.name] = new Int32Array(next.buffer, next.byteOffset, next.length * 2)
    })
    this.capacity = capacity
  }

  /**
   * Index of (exchange, symbol) in this frame's symbols table, added if new.
   * @param {string} exchange
   * @param {string} symbol
   */
  symbolIndex (exchange, symbol) {
    let bySymbol = this._symIndex.get(exchange)
    if (bySymbol === undefined) {
      bySymbol = new Map()
      this._symIndex.set(exchange, bySymbol)
    }
    let idx = bySymbol.get(symbol)
    if (idx === undefined) {
      idx = this.symbols.length
      if (idx > 0xffff) throw new Error(`wire: more than 65536 symbols in one ${this.type} frame`)
      this.symbols.push([exchange, symbol])
      bySymbol.set(symbol, idx)
    }
    return idx
  }

  /**
   * Reserves the next row (all columns missing until written) and returns its index. Column arrays
   * may be reallocated here: read `this.cols` / `this.i64` after calling it.
   */
  addRow () {
    if (this.n === 0) this.recvMonoUs = Number(process.hrtime.bigint() / 1000n)
    if (this.n === this.capacity) this._alloc(this.capacity * 2, this.n)
    return this.n++
  }

  /**
   * Slow generic path: appends one row given as an object (enums as names or indexes, null/undefined
   * = missing, width > 1 columns as arrays, i64 as Number or BigInt).
   * @param {Record<string, any>} row
   */
  appendRow (row) {
    const i = this.addRow()
    this.spec.columns.forEach((col, ci) => {
      const v = row[col.name]
      if (v == null) return
      const width = this.widths[ci]
      if (col.dtype === 'str') {
        this.cols[col.name][i] = String(v)
        return
      }
      const store = (j, x) => {
        if (x == null) return
        const idx = i * width + j
        if (col.enumIndex !== null && typeof x === 'string') {
          const e = col.enumIndex.get(x)
          this.cols[col.name][idx] = e === undefined ? 0 : e
        } else if (col.dtype === 'i64') {
          if (typeof x === 'bigint') this.cols[col.name][idx] = x
          else writeI64(this.i64[col.name], idx, x)
        } else {
          this.cols[col.name][idx] = x
        }
      }
      if (width === 1) store(0, v)
      else for (let j = 0; j < width; j++) store(j, v[j])
    })
    return i
  }

  /**
   * Encodes the accumulated rows into one frame and resets the builder for the next batch.
   * @param {Record<string, any>} header common fields (seq, session, sent_mono_us, ...); type, n, symbols and
   *   recv_mono_us come from the builder unless given
   * @returns {Buffer}
   */
  build (header) {
    const n = this.n
    const full = {
      ...this.extraHeader,
      symbols: this.symbols,
      recv_mono_us: this.recvMonoUs ?? Number(process.hrtime.bigint() / 1000n),
      ...header,
      type: this.type,
      n
    }
    const payloads = this.spec.columns.map((col, ci) => {
      if (col.dtype === 'str') return encodeStrings(this.cols[col.name], n)
      return { kind: 'fixed', data: this.cols[col.name].subarray(0, n * this.widths[ci]) }
    })
    const ordered = { type: this.type, n }
    for (const k of this.schema.commonHeader) if (!(k in ordered)) ordered[k] = full[k]
    for (const k of this.spec.header) ordered[k] = full[k]
    for (const k of Object.keys(full)) if (!(k in ordered)) ordered[k] = full[k]
    for (const k of [...this.schema.commonHeader, ...this.spec.header]) {
      if (ordered[k] === undefined) throw new Error(`wire: ${this.type} frame header is missing field ${JSON.stringify(k)}`)
    }
    const buf = assembleFrame(ordered, payloads, this.schema)
    this.reset()
    return buf
  }

  /** Drops the accumulated rows (keeps the allocated capacity). */
  reset () {
    const n = this.n
    this.spec.columns.forEach((col, ci) => {
      if (col.dtype === 'str') {
        this.cols[col.name].length = 0
        return
      }
      const missing = missingOf(col)
      this.cols[col.name].fill(missing, 0, n * this.widths[ci])
    })
    this.n = 0
    this.symbols = []
    this._symIndex = new Map()
    this.recvMonoUs = null
  }
}
