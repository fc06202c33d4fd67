// Generic encoder/decoder of one wire frame (layout: proto/README.md). Everything is driven by the
// compiled wire.json schema: a column added there is encoded and decoded here without code changes.
import { schema as defaultSchema, frameSpec, columnWidth, typedArrayFor, INT64_MIN } from './schema.js'

/** @typedef {import('./schema.js').WireSchema} WireSchema */
/** @typedef {import('./schema.js').ColumnSpec} ColumnSpec */
/** @typedef {Uint8Array|Uint16Array|Uint32Array|BigInt64Array|Float64Array} NumericColumn */
/**
 * One column ready to be laid out: a typed array of n*width values, or for `str` the offsets and blob.
 * @typedef {{ kind: 'fixed', data: NumericColumn } | { kind: 'str', offsets: Uint32Array, blob: Uint8Array }} ColumnPayload
 */

const PREFIX_BYTES = 12
const pad8 = (x) => (x + 7) & ~7

/**
 * Header object in wire order: type, n, the other common fields, the type's fields, then any extra.
 * @param {Record<string, any>} header
 * @param {number} n
 * @param {import('./schema.js').FrameSpec} spec
 * @param {WireSchema} s
 */
function orderedHeader (header, n, spec, s) {
  const out = { type: spec.type, n }
  for (const k of s.commonHeader) if (k !== 'type' && k !== 'n') out[k] = header[k]
  for (const k of spec.header) out[k] = header[k]
  for (const k of Object.keys(header)) if (!(k in out)) out[k] = header[k]
  return out
}

/**
 * @param {Record<string, any>} header
 * @param {import('./schema.js').FrameSpec} spec
 * @param {WireSchema} s
 */
function checkHeaderFields (header, spec, s) {
  for (const k of [...s.commonHeader, ...spec.header]) {
    if (k === 'n') continue
    if (!(k in header) || header[k] === undefined) {
      throw new Error(`wire: ${spec.type} frame header is missing field ${JSON.stringify(k)}`)
    }
  }
}

/**
 * Lays out prefix, JSON header and column payloads into one Buffer.
 * @param {Record<string, any>} header complete header (n included)
 * @param {ColumnPayload[]} payloads in schema order
 * @param {WireSchema} [s]
 * @returns {Buffer}
 */
export function assembleFrame (header, payloads, s = defaultSchema) {
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8')
  let size = pad8(PREFIX_BYTES + headerBytes.length)
  for (const p of payloads) {
    size += p.kind === 'fixed' ? pad8(p.data.byteLength) : pad8(p.offsets.byteLength + p.blob.byteLength)
  }
  const buf = Buffer.alloc(size) // zero-filled: padding must be zero
  buf.write(s.magic, 0, 'latin1')
  buf.writeUInt16LE(s.version, 4)
  buf.writeUInt16LE(0, 6)
  buf.writeUInt32LE(headerBytes.length, 8)
  headerBytes.copy(buf, PREFIX_BYTES)
  let off = pad8(PREFIX_BYTES + headerBytes.length)
  for (const p of payloads) {
    if (p.kind === 'fixed') {
      buf.set(new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength), off)
      off += pad8(p.data.byteLength)
    } else {
      buf.set(new Uint8Array(p.offsets.buffer, p.offsets.byteOffset, p.offsets.byteLength), off)
      buf.set(p.blob, off + p.offsets.byteLength)
      off += pad8(p.offsets.byteLength + p.blob.byteLength)
    }
  }
  return buf
}

/**
 * Encodes a list of strings as u32 offsets[n+1] and a UTF-8 blob. null/undefined -> "" (missing).
 * @param {ArrayLike<string|null|undefined>} strings
 * @param {number} n
 * @returns {{ kind: 'str', offsets: Uint32Array, blob: Uint8Array }}
 */
export function encodeStrings (strings, n) {
  const offsets = new Uint32Array(n + 1)
  if (n === 0) return { kind: 'str', offsets, blob: new Uint8Array(0) }
  let joined = ''
  let ascii = true
  for (let i = 0; i < n; i++) {
    const v = strings[i]
    const str = v == null ? '' : v
    joined += str
    offsets[i + 1] = joined.length
  }
  const blob = Buffer.from(joined, 'utf8')
  if (blob.length !== joined.length) ascii = false
  if (!ascii) {
    // some string has multi-byte characters: offsets must count bytes, not UTF-16 units
    let o = 0
    for (let i = 0; i < n; i++) {
      const v = strings[i]
      o += v == null ? 0 : Buffer.byteLength(v, 'utf8')
      offsets[i + 1] = o
    }
  }
  return { kind: 'str', offsets, blob }
}

/**
 * Converts one value given by a caller (JSON-ish) to what a typed array stores.
 * @param {ColumnSpec} col
 * @param {any} v
 * @param {string} where
 */
function toStored (col, v, where) {
  if (col.enumIndex !== null) {
    if (v == null) return 0
    if (typeof v === 'string') {
      const idx = col.enumIndex.get(v)
      if (idx === undefined) throw new Error(`wire: ${where}: ${JSON.stringify(v)} is not a value of enum ${col.enumName} (${col.enumValues.join(', ')})`)
      return idx
    }
    if (Number.isInteger(v) && v >= 0 && v < col.enumValues.length) return v
    throw new Error(`wire: ${where}: ${JSON.stringify(v)} is not a value of enum ${col.enumName}`)
  }
  switch (col.dtype) {
    case 'f64':
      if (v == null) return NaN
      if (typeof v !== 'number') throw new Error(`wire: ${where}: expected a number, got ${JSON.stringify(v)}`)
      return v
    case 'i64':
      if (v == null) return INT64_MIN
      if (typeof v === 'bigint') return v
      if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v)
      if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v)
      throw new Error(`wire: ${where}: expected an integer, got ${JSON.stringify(v)}`)
    default: {
      const max = 2 ** (8 * col.bytes) - 1
      if (!Number.isInteger(v) || v < 0 || v > max) {
        throw new Error(`wire: ${where}: expected an integer 0..${max}, got ${JSON.stringify(v)}`)
      }
      return v
    }
  }
}

/**
 * Number of rows a column value describes.
 * @param {ColumnSpec} col
 * @param {any} values
 * @param {number} width
 */
function rowsOf (col, values, width) {
  if (ArrayBuffer.isView(values)) return width === 0 ? 0 : values.length / width
  if (width !== 1 && values.length > 0 && Array.isArray(values[0])) return values.length
  return width === 0 ? 0 : values.length / width
}

/**
 * Encodes one frame.
 * @param {Record<string, any>} header must include `type` and the common/type-specific fields; `n` is set here
 * @param {Record<string, any>} [columns] column name -> typed array of n*width values, or an array of values
 *   (width > 1: flat, or one array of `width` values per row); enums as names or indexes; null = missing
 * @param {WireSchema} [s]
 * @returns {Buffer}
 */
export function encodeFrame (header, columns = {}, s = defaultSchema) {
  if (header === null || typeof header !== 'object') throw new Error('wire: encodeFrame needs a header object')
  const spec = frameSpec(header.type, s)
  checkHeaderFields(header, spec, s)
  for (const name of Object.keys(columns)) {
    if (!spec.columns.some((c) => c.name === name)) {
      throw new Error(`wire: ${spec.type} frame has no column ${JSON.stringify(name)} (columns: ${spec.columns.map((c) => c.name).join(', ')})`)
    }
  }
  let n = null
  const widths = spec.columns.map((col) => columnWidth(col, header))
  spec.columns.forEach((col, ci) => {
    const values = columns[col.name]
    if (values == null || typeof values.length !== 'number') {
      throw new Error(`wire: ${spec.type} frame: column ${JSON.stringify(col.name)} is missing or not an array`)
    }
    const rows = rowsOf(col, values, widths[ci])
    if (!Number.isInteger(rows)) throw new Error(`wire: ${spec.type}.${col.name}: ${values.length} values is not a multiple of width ${widths[ci]}`)
    if (n === null) n = rows
    else if (rows !== n && widths[ci] !== 0) {
      throw new Error(`wire: ${spec.type}.${col.name} has ${rows} rows, earlier columns have ${n}`)
    }
  })
  n = n ?? 0
  const payloads = spec.columns.map((col, ci) => {
    const values = columns[col.name]
    const width = widths[ci]
    if (col.dtype === 'str') {
      for (let i = 0; i < n; i++) {
        const v = values[i]
        if (v != null && typeof v !== 'string') throw new Error(`wire: ${spec.type}.${col.name}[${i}]: expected a string, got ${JSON.stringify(v)}`)
      }
      return encodeStrings(values, n)
    }
    const T = typedArrayFor(col.dtype)
    if (values instanceof T) return { kind: 'fixed', data: values.subarray(0, n * width) }
    const data = new T(n * width)
    const nested = width !== 1 && values.length > 0 && Array.isArray(values[0])
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < width; j++) {
        let v
        if (nested) {
          const row = values[i]
          if (!Array.isArray(row) || row.length !== width) {
            throw new Error(`wire: ${spec.type}.${col.name}[${i}]: expected ${width} values (header ${col.widthField}), got ${JSON.stringify(row)}`)
          }
          v = row[j]
        } else {
          v = values[i * width + j]
        }
        data[i * width + j] = toStored(col, v, `${spec.type}.${col.name}[${width === 1 ? i : `${i}][${j}`}]`)
      }
    }
    return { kind: 'fixed', data }
  })
  return assembleFrame(orderedHeader(header, n, spec, s), payloads, s)
}

/**
 * @typedef {object} DecodedFrame
 * @property {Record<string, any>} header
 * @property {Record<string, NumericColumn|string[]>} columns typed arrays (i64 as BigInt64Array), str as string arrays
 */

/**
 * Decodes one frame. Throws an Error saying what is wrong (bad magic, other version, truncated ...).
 * Numeric columns are zero-copy views when the buffer is aligned, copies otherwise.
 * @param {Uint8Array} input
 * @param {WireSchema} [s]
 * @returns {DecodedFrame}
 */
export function decodeFrame (input, s = defaultSchema) {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  if (buf.length < PREFIX_BYTES) throw new Error(`wire: frame of ${buf.length} bytes is shorter than the ${PREFIX_BYTES}-byte prefix`)
  const magic = buf.toString('latin1', 0, 4)
  if (magic !== s.magic) throw new Error(`wire: bad magic ${JSON.stringify(magic)}, expected ${JSON.stringify(s.magic)}`)
  const version = buf.readUInt16LE(4)
  if (version !== s.version) throw new Error(`wire: frame version ${version}, this reader understands version ${s.version}`)
  const headerLength = buf.readUInt32LE(8)
  if (PREFIX_BYTES + headerLength > buf.length) {
    throw new Error(`wire: header length ${headerLength} runs past the end of the ${buf.length}-byte frame`)
  }
  let header
  try {
    header = JSON.parse(buf.toString('utf8', PREFIX_BYTES, PREFIX_BYTES + headerLength))
  } catch (e) {
    throw new Error(`wire: header is not valid JSON: ${e.message}`)
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new Error('wire: header is not a JSON object')
  const spec = frameSpec(header.type, s)
  const n = header.n
  if (!Number.isInteger(n) || n < 0) throw new Error(`wire: ${spec.type} header field n is ${JSON.stringify(n)}, expected a non-negative integer`)
  let off = pad8(PREFIX_BYTES + headerLength)
  /** @type {Record<string, any>} */
  const columns = {}
  for (const col of spec.columns) {
    const width = columnWidth(col, header)
    if (col.dtype === 'str') {
      const offBytes = 4 * (n + 1)
      if (off + offBytes > buf.length) throw new Error(`wire: ${spec.type}.${col.name}: offsets run past the end of the frame`)
      const offsets = new Array(n + 1)
      for (let i = 0; i <= n; i++) offsets[i] = buf.readUInt32LE(off + 4 * i)
      const blobStart = off + offBytes
      if (offsets[0] !== 0) throw new Error(`wire: ${spec.type}.${col.name}: offsets[0] is ${offsets[0]}, expected 0`)
      const strings = new Array(n)
      for (let i = 0; i < n; i++) {
        if (offsets[i + 1] < offsets[i]) throw new Error(`wire: ${spec.type}.${col.name}: offsets decrease at row ${i}`)
        strings[i] = buf.toString('utf8', blobStart + offsets[i], blobStart + offsets[i + 1])
      }
      if (blobStart + offsets[n] > buf.length) throw new Error(`wire: ${spec.type}.${col.name}: string blob runs past the end of the frame`)
      columns[col.name] = strings
      off += pad8(offBytes + offsets[n])
    } else {
      const T = typedArrayFor(col.dtype)
      const count = n * width
      const bytes = count * T.BYTES_PER_ELEMENT
      if (off + bytes > buf.length) {
        throw new Error(`wire: ${spec.type}.${col.name}: ${bytes} bytes at offset ${off} run past the end of the ${buf.length}-byte frame`)
      }
      const abs = buf.byteOffset + off
      columns[col.name] = abs % T.BYTES_PER_ELEMENT === 0
        ? new T(buf.buffer, abs, count)
        : new T(buf.buffer.slice(abs, abs + bytes))
      off += pad8(bytes)
    }
  }
  return { header, columns }
}
