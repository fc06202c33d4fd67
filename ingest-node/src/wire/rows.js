// Row <-> column helpers for tests, vectors and debugging (not the hot path).
import { schema as defaultSchema, frameSpec, columnWidth, INT64_MIN } from './schema.js'

/**
 * Turns row objects (`{column: value}`, enums as names, null = missing, width > 1 columns as arrays)
 * into the column arrays encodeFrame takes.
 * @param {string} type
 * @param {Record<string, any>[]} rows
 * @param {Record<string, any>} header needed for width fields such as `depth`
 * @param {import('./schema.js').WireSchema} [s]
 */
export function rowsToColumns (type, rows, header, s = defaultSchema) {
  const spec = frameSpec(type, s)
  /** @type {Record<string, any[]>} */
  const columns = {}
  for (const col of spec.columns) {
    const width = columnWidth(col, header)
    columns[col.name] = rows.map((row, i) => {
      if (!(col.name in row)) throw new Error(`wire: ${type} row ${i} has no ${JSON.stringify(col.name)}`)
      const v = row[col.name]
      if (width !== 1 && (!Array.isArray(v) || v.length !== width)) {
        throw new Error(`wire: ${type} row ${i} ${col.name}: expected an array of ${width} values`)
      }
      return v
    })
  }
  return columns
}

/**
 * Decoded frame -> row objects: enums as names, f64 NaN and i64 INT64_MIN as null, i64 as Number
 * (or BigInt with {bigint: true}), str as strings ("" stays "").
 * @param {import('./codec.js').DecodedFrame} decoded
 * @param {{bigint?: boolean}} [options]
 * @param {import('./schema.js').WireSchema} [s]
 */
export function frameToRows ({ header, columns }, { bigint = false } = {}, s = defaultSchema) {
  const spec = frameSpec(header.type, s)
  const rows = []
  for (let i = 0; i < header.n; i++) {
    /** @type {Record<string, any>} */
    const row = {}
    for (const col of spec.columns) {
      const width = columnWidth(col, header)
      const data = columns[col.name]
      const conv = (v) => {
        if (col.enumValues !== null) return col.enumValues[v] ?? `?${v}`
        if (col.dtype === 'f64') return Number.isNaN(v) ? null : v
        if (col.dtype === 'i64') return v === INT64_MIN ? null : bigint ? v : Number(v)
        return v
      }
      if (col.widthField === null) {
        row[col.name] = conv(data[i])
      } else {
        const vals = []
        for (let j = 0; j < width; j++) vals.push(conv(data[i * width + j]))
        row[col.name] = vals
      }
    }
    rows.push(row)
  }
  return rows
}
