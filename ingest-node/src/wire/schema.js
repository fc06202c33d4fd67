// Loads proto/wire.json (the one binding schema) and compiles it into frame specs that the
// generic encoder, decoder and FrameBuilder work from. Nothing here knows a frame type by name.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const WIRE_JSON_PATH = fileURLToPath(new URL('../../../proto/wire.json', import.meta.url))

/**
 * @typedef {'u8'|'u16'|'u32'|'i64'|'f64'|'str'} Dtype
 * @typedef {object} ColumnSpec
 * @property {string} name
 * @property {Dtype} dtype
 * @property {number} bytes bytes per value (0 for str)
 * @property {string|null} enumName name of the enum in wire.json `enums`, or null
 * @property {string[]|null} enumValues
 * @property {Map<string, number>|null} enumIndex
 * @property {string|null} widthField header field giving values per row, or null (1 per row)
 * @typedef {object} FrameSpec
 * @property {string} type
 * @property {string[]} header type-specific header fields
 * @property {ColumnSpec[]} columns in wire order
 * @typedef {object} WireSchema
 * @property {number} version
 * @property {string} magic
 * @property {string[]} commonHeader
 * @property {Record<string, string[]>} enums
 * @property {Map<string, FrameSpec>} frames
 */

const TYPED_ARRAYS = {
  u8: Uint8Array,
  u16: Uint16Array,
  u32: Uint32Array,
  i64: BigInt64Array,
  f64: Float64Array
}

/** @param {Dtype} dtype */
export function typedArrayFor (dtype) {
  const T = TYPED_ARRAYS[dtype]
  if (T === undefined) throw new Error(`wire: no typed array for dtype ${JSON.stringify(dtype)}`)
  return T
}

export const INT64_MIN = -9223372036854775808n

/**
 * Compiles a parsed wire.json object. Exported for tests; use `schema` for the real one.
 * @param {any} json
 * @param {string} [where] file name for error messages
 * @returns {WireSchema}
 */
export function compileSchema (json, where = 'wire.json') {
  const fail = (msg) => { throw new Error(`${where}: ${msg}`) }
  if (typeof json.magic !== 'string' || Buffer.byteLength(json.magic) !== 4) fail('"magic" must be 4 ASCII characters')
  if (!Number.isInteger(json.version) || json.version < 0 || json.version > 0xffff) fail('"version" must be a u16')
  if (String(json.missing?.i64) !== String(INT64_MIN)) fail(`"missing.i64" is ${json.missing?.i64}, this encoder assumes INT64_MIN`)
  if (json.missing?.f64 !== 'NaN') fail(`"missing.f64" is ${json.missing?.f64}, this encoder assumes NaN`)
  if (json.missing?.str !== '') fail('"missing.str" must be ""')
  const enums = json.enums ?? {}
  /** @type {Map<string, FrameSpec>} */
  const frames = new Map()
  for (const [type, def] of Object.entries(json.frames ?? {})) {
    const columns = (def.columns ?? []).map((col, i) => {
      const [name, dtype, enumName = null, widthField = null] = col
      if (typeof name !== 'string') fail(`frames.${type}.columns[${i}]: name must be a string`)
      const bytes = json.dtypes?.[dtype]
      if (bytes === undefined) fail(`frames.${type}.columns[${i}] (${name}): unknown dtype ${JSON.stringify(dtype)}`)
      if (dtype !== 'str') {
        const T = typedArrayFor(dtype)
        if (T.BYTES_PER_ELEMENT !== bytes) fail(`dtype ${dtype} is ${bytes} bytes in wire.json, ${T.BYTES_PER_ELEMENT} here`)
      }
      let enumValues = null
      let enumIndex = null
      if (enumName !== null) {
        enumValues = enums[enumName]
        if (!Array.isArray(enumValues)) fail(`frames.${type}.columns[${i}] (${name}): unknown enum ${JSON.stringify(enumName)}`)
        if (dtype !== 'u8' && dtype !== 'u16') fail(`frames.${type}.columns[${i}] (${name}): enum column must be u8 or u16`)
        enumIndex = new Map(enumValues.map((v, idx) => [v, idx]))
      }
      if (widthField !== null && !(def.header ?? []).includes(widthField)) {
        fail(`frames.${type}.columns[${i}] (${name}): width field ${JSON.stringify(widthField)} is not in frames.${type}.header`)
      }
      return /** @type {ColumnSpec} */ ({ name, dtype, bytes, enumName, enumValues, enumIndex, widthField })
    })
    frames.set(type, { type, header: def.header ?? [], columns })
  }
  return {
    version: json.version,
    magic: json.magic,
    commonHeader: json.common_header ?? [],
    enums,
    frames
  }
}

/** The schema from proto/wire.json, loaded once at start-up. */
export const schema = compileSchema(JSON.parse(readFileSync(WIRE_JSON_PATH, 'utf8')), WIRE_JSON_PATH)

/**
 * @param {string} type
 * @param {WireSchema} [s]
 * @returns {FrameSpec}
 */
export function frameSpec (type, s = schema) {
  const spec = s.frames.get(type)
  if (spec === undefined) {
    throw new Error(`wire: unknown frame type ${JSON.stringify(type)} (known: ${[...s.frames.keys()].join(', ')})`)
  }
  return spec
}

/**
 * Values per row of a column given the frame header.
 * @param {ColumnSpec} col
 * @param {Record<string, any>} header
 */
export function columnWidth (col, header) {
  if (col.widthField === null) return 1
  const w = header[col.widthField]
  if (!Number.isInteger(w) || w < 0) {
    throw new Error(`wire: ${header.type} column ${col.name} needs header field ${col.widthField} to be a non-negative integer, got ${JSON.stringify(w)}`)
  }
  return w
}
