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
 * @property {TardisPath|null} tardis the tardis-dev normalized message field the column is read from
 *   (wire.json `frames.<type>.tardis`), null for `sym` and for frames without one
 * @typedef {object} TardisPath where a value is in a tardis-dev normalized message: `field` (`m[field]`),
 *   or, for a per-level column (a width field), `field` of each element of the array `array`
 *   (`m[array][j][field]`; written `array[].field` in wire.json)
 * @property {string} path as written in wire.json
 * @property {string|null} array
 * @property {string} field
 * @typedef {object} FrameSpec
 * @property {string} type
 * @property {string[]} header type-specific header fields
 * @property {ColumnSpec[]} columns in wire order
 * @property {Record<string, TardisPath>} headerTardis type-specific header field -> the message field
 *   it is read from (book_snapshot: depth, interval_ms)
 * @property {boolean} fromTardis the frame is made from tardis-dev normalized messages (it has a
 *   `tardis` map; the ingester's row writer needs a name for every column but `sym`, convert.js)
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

const TARDIS_PATH = /^(?:([A-Za-z_$][\w$]*)\[\]\.)?([A-Za-z_$][\w$]*)$/

/**
 * Parses a wire.json tardis name: `field` or `array[].field`. null if malformed.
 * @param {any} path
 * @returns {TardisPath|null}
 */
export function parseTardisPath (path) {
  const m = typeof path === 'string' ? TARDIS_PATH.exec(path) : null
  return m === null ? null : { path, array: m[1] ?? null, field: m[2] }
}

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
    const tardisNames = def.tardis ?? null
    if (tardisNames !== null && (typeof tardisNames !== 'object' || Array.isArray(tardisNames))) fail(`frames.${type}.tardis must be an object`)
    const header = def.header ?? []
    /** @param {string} name @param {boolean} perLevel */
    const tardisOf = (name, perLevel) => {
      if (tardisNames === null || !(name in tardisNames)) return null
      const p = parseTardisPath(tardisNames[name])
      if (p === null) fail(`frames.${type}.tardis.${name}: ${JSON.stringify(tardisNames[name])} is not a field name or array[].field`)
      if ((p.array !== null) !== perLevel) fail(`frames.${type}.tardis.${name}: ${perLevel ? 'a per-level column needs array[].field' : 'array[].field is only for a per-level column'}`)
      return p
    }
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
      const tardis = tardisOf(name, widthField !== null)
      return /** @type {ColumnSpec} */ ({ name, dtype, bytes, enumName, enumValues, enumIndex, widthField, tardis })
    })
    /** @type {Record<string, TardisPath>} */
    const headerTardis = {}
    for (const name of Object.keys(tardisNames ?? {})) {
      if (header.includes(name)) headerTardis[name] = /** @type {TardisPath} */ (tardisOf(name, false))
      else if (!columns.some((c) => c.name === name) || name === 'sym') fail(`frames.${type}.tardis.${name}: not a column or header field of the frame`)
    }
    frames.set(type, { type, header, columns, headerTardis, fromTardis: tardisNames !== null })
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
