// Encodes every case of proto/vectors/cases.json into proto/vectors/node/<case>.bin (npm run vectors).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { encodeFrame, rowsToColumns } from '../src/wire/index.js'

export const VECTORS_DIR = fileURLToPath(new URL('../../proto/vectors/', import.meta.url))

/** @returns {Record<string, {header: Record<string, any>, rows: Record<string, any>[]}>} */
export function loadCases () {
  return JSON.parse(readFileSync(join(VECTORS_DIR, 'cases.json'), 'utf8')).cases
}

/** @param {{header: Record<string, any>, rows: Record<string, any>[]}} c */
export function encodeCase (c) {
  return encodeFrame(c.header, rowsToColumns(c.header.type, c.rows, c.header))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outDir = join(VECTORS_DIR, 'node')
  mkdirSync(outDir, { recursive: true })
  const cases = loadCases()
  for (const [name, c] of Object.entries(cases)) {
    const buf = encodeCase(c)
    writeFileSync(join(outDir, `${name}.bin`), buf)
    console.log(`${name}.bin ${buf.length} bytes`)
  }
  console.log(`wrote ${Object.keys(cases).length} vectors to ${outDir}`)
}
