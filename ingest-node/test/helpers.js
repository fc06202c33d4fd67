// Shared test helpers (no network: everything on 127.0.0.1 / inproc).
import { createServer } from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { readLines } from '../src/replay/recording.js'

export const INGEST_DIR = fileURLToPath(new URL('..', import.meta.url))
export const REPO_ROOT = resolve(INGEST_DIR, '..')
export const SHARED_DATA = resolve(REPO_ROOT, '../shared/data')
export const SPOT_0808 = resolve(SHARED_DATA, 'binance-ws/spot_btcusdt_20240808.gz')

export const tmpDir = () => mkdtempSync(join(tmpdir(), 'ingest-test-'))

/** A TCP port that nothing listens on (bound then closed). */
export async function closedPort () {
  const srv = createServer()
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = /** @type {import('node:net').AddressInfo} */ (srv.address())
  await new Promise((resolve) => srv.close(resolve))
  return port
}

/**
 * First `count` lines of a recording.
 * @param {string} file
 * @param {number} count
 */
export async function headLines (file, count) {
  const out = []
  for await (const line of readLines(file)) {
    out.push(line)
    if (out.length === count) break
  }
  return out
}

/**
 * Writes lines into a new gzip file in dir.
 * @param {string} dir @param {string} name @param {string[]} lines
 */
export function writeGz (dir, name, lines) {
  const p = join(dir, name)
  writeFileSync(p, gzipSync(lines.join('\n') + '\n'))
  return p
}

/**
 * What each @trade line of a recording must become, parsed by the test itself.
 * @param {string[]} lines
 */
export function expectedTrades (lines) {
  const out = []
  for (const line of lines) {
    const json = line.slice(line.indexOf(' ') + 1)
    const msg = JSON.parse(json)
    if (typeof msg.stream !== 'string' || !msg.stream.endsWith('@trade')) continue
    const d = msg.data
    out.push({ symbol: d.s, id: String(d.t), price: Number(d.p), amount: Number(d.q), side: d.m ? 'sell' : 'buy', timestampMs: d.T })
  }
  return out
}

/**
 * Collects every message of a source (flattening arrays) until it ends.
 * @param {AsyncIterable<any>} source
 */
export async function collect (source) {
  const out = []
  for await (const m of source) {
    if (Array.isArray(m)) out.push(...m)
    else out.push(m)
  }
  return out
}
