import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import {
  encodeFrame, decodeFrame, rowsToColumns, frameToRows, FrameBuilder, compileSchema, schema, WIRE_JSON_PATH, INT64_MIN
} from '../src/wire/index.js'
import { writeI64 } from '../src/wire/builder.js'
import { loadCases, encodeCase, VECTORS_DIR } from '../scripts/write-vectors.js'

const cases = loadCases()
const caseNames = Object.keys(cases)

/** decoded frame must equal the case: header (plus n) and rows (floats exact, null = missing, enum names) */
function assertMatchesCase (decoded, c, where) {
  assert.deepEqual(decoded.header, { ...c.header, n: c.rows.length }, `${where}: header`)
  assert.deepEqual(frameToRows(decoded), c.rows, `${where}: rows`)
}

describe('wire: cases.json round trip', () => {
  for (const name of caseNames) {
    test(name, () => {
      const buf = encodeCase(cases[name])
      assert.equal(buf.toString('latin1', 0, 4), 'MDTW')
      assert.equal(buf.readUInt16LE(4), schema.version)
      assert.equal(buf.readUInt16LE(6), 0)
      assert.equal(buf.length % 8, 0, 'frame is padded to 8')
      assertMatchesCase(decodeFrame(buf), cases[name], name)
    })
  }
})

/**
 * @param {string} side
 */
function crossVectorTests (side) {
  const dir = join(VECTORS_DIR, side)
  test(`proto/vectors/${side}/ has a .bin for every case of cases.json`, () => {
    assert.ok(existsSync(dir), `${dir} does not exist: the ${side} side has not written its vectors`)
    const have = new Set(readdirSync(dir).filter((f) => f.endsWith('.bin')).map((f) => f.slice(0, -4)))
    const missing = caseNames.filter((n) => !have.has(n))
    assert.deepEqual(missing, [], `${dir} lacks ${missing.length} of ${caseNames.length} cases`)
  })
  for (const name of caseNames) {
    test(`proto/vectors/${side}/${name}.bin decodes to its case`, () => {
      const file = join(dir, `${name}.bin`)
      assert.ok(existsSync(file), `${file} is missing`)
      assertMatchesCase(decodeFrame(readFileSync(file)), cases[name], file)
    })
  }
}

describe('wire: vectors written by Node', () => crossVectorTests('node'))
describe('wire: vectors written by Python', () => crossVectorTests('python'))

describe('wire: layout', () => {
  test('header JSON after the 12-byte prefix, columns 8-aligned in schema order', () => {
    const c = cases.trade_two_symbols
    const buf = encodeCase(c)
    const h = buf.readUInt32LE(8)
    const header = JSON.parse(buf.toString('utf8', 12, 12 + h))
    assert.equal(header.n, 3)
    let off = (12 + h + 7) & ~7
    for (let i = 12 + h; i < off; i++) assert.equal(buf[i], 0, 'header padding is zero')
    // sym u16 x3
    assert.deepEqual([buf.readUInt16LE(off), buf.readUInt16LE(off + 2), buf.readUInt16LE(off + 4)], [0, 1, 0])
    off += 8
    assert.equal(buf.readBigInt64LE(off), 1723161255342000n)
    off += 24 + 24 // timestamp, local_timestamp
    assert.equal(buf.readDoubleLE(off), 61837.63)
    off += 24 + 24 // price, amount
    assert.deepEqual([...buf.subarray(off, off + 3)], [2, 1, 0]) // side: sell, buy, unknown
    off += 8
    const offsets = [0, 1, 2, 3].map((i) => buf.readUInt32LE(off + 4 * i))
    assert.deepEqual(offsets, [0, 10, 10 + Buffer.byteLength('id-é€'), 10 + Buffer.byteLength('id-é€')])
    assert.equal(buf.toString('utf8', off + 16, off + 16 + offsets[3]), '3735683259id-é€')
    assert.equal(buf.length, (off + 16 + offsets[3] + 7) & ~7)
  })

  test('decodes from an unaligned buffer (copies instead of views)', () => {
    const buf = encodeCase(cases.book_snapshot_depth3)
    const shifted = Buffer.alloc(buf.length + 3)
    buf.copy(shifted, 3)
    assertMatchesCase(decodeFrame(shifted.subarray(3)), cases.book_snapshot_depth3, 'unaligned')
  })

  test('i64 columns decode as BigInt64Array, missing as INT64_MIN', () => {
    const d = decodeFrame(encodeCase(cases.derivative_ticker_missing))
    assert.ok(d.columns.funding_timestamp instanceof BigInt64Array)
    assert.equal(d.columns.funding_timestamp[1], INT64_MIN)
    assert.ok(Number.isNaN(d.columns.open_interest[0]))
  })
})

describe('wire: clear errors', () => {
  const good = encodeCase(cases.trade_two_symbols)
  test('bad magic', () => {
    const b = Buffer.from(good); b.write('XXXX', 0, 'latin1')
    assert.throws(() => decodeFrame(b), /bad magic "XXXX"/)
  })
  test('other version', () => {
    const b = Buffer.from(good); b.writeUInt16LE(99, 4)
    assert.throws(() => decodeFrame(b), /version 99/)
  })
  test('truncated frame', () => {
    assert.throws(() => decodeFrame(good.subarray(0, good.length - 40)), /run(s)? past the end/)
    assert.throws(() => decodeFrame(good.subarray(0, 5)), /shorter than the 12-byte prefix/)
  })
  test('unknown frame type, missing header field, bad enum, ragged columns', () => {
    assert.throws(() => encodeFrame({ ...cases.trade_empty.header, type: 'nope' }), /unknown frame type "nope"/)
    const { session, ...noSession } = cases.trade_empty.header
    assert.throws(() => encodeFrame(noSession, rowsToColumns('trade', [], noSession)), /missing field "session"/)
    const c = cases.trade_two_symbols
    const cols = rowsToColumns('trade', c.rows, c.header)
    assert.throws(() => encodeFrame(c.header, { ...cols, side: ['sell', 'bogus', 'buy'] }), /trade\.side\[1\].*"bogus" is not a value of enum side/)
    assert.throws(() => encodeFrame(c.header, { ...cols, price: [1, 2] }), /trade\.price has 2 rows/)
    assert.throws(() => encodeFrame(c.header, { ...cols, extra: [1, 2, 3] }), /no column "extra"/)
  })
})

describe('wire: generic over wire.json', () => {
  test('a column added to the schema is encoded and decoded without code changes', () => {
    const json = JSON.parse(readFileSync(WIRE_JSON_PATH, 'utf8'))
    json.frames.trade.columns.push(['venue_seq', 'u32'], ['note', 'str'], ['levels', 'f64', null, 'k'])
    json.frames.trade.header.push('k')
    const s2 = compileSchema(json, 'test schema')
    const header = { ...cases.trade_two_symbols.header, k: 2 }
    const rows = cases.trade_two_symbols.rows.map((r, i) => ({ ...r, venue_seq: 10 + i, note: `n${i}`, levels: [i, null] }))
    const buf = encodeFrame(header, rowsToColumns('trade', rows, header, s2), s2)
    const decoded = decodeFrame(buf, s2)
    assert.deepEqual(frameToRows(decoded, {}, s2), rows)
  })
})

describe('wire: FrameBuilder', () => {
  test('builds the same frame as encodeFrame, growing past its capacity', () => {
    const b = new FrameBuilder('trade', {}, { capacity: 2 })
    const c = cases.trade_two_symbols
    for (const r of c.rows) {
      const [ex, sym] = c.header.symbols[r.sym]
      b.appendRow({ ...r, sym: b.symbolIndex(ex, sym) })
    }
    const { type, ...rest } = c.header
    const built = b.build({ ...rest, recv_mono_us: c.header.recv_mono_us })
    assertMatchesCase(decodeFrame(built), c, 'builder')
    assert.equal(b.n, 0, 'reset after build')
    assert.deepEqual(b.symbols, [])
  })

  test('book_snapshot: width from the depth header field, unset levels missing', () => {
    const b = new FrameBuilder('book_snapshot', { depth: 3, interval_ms: 100 }, { capacity: 1 })
    const c = cases.book_snapshot_depth3
    b.appendRow({ ...c.rows[0], sym: b.symbolIndex('bitmex', 'XBTUSD') })
    const { type, depth, interval_ms, ...rest } = c.header
    assertMatchesCase(decodeFrame(b.build(rest)), c, 'builder book')
  })

  test('writeI64 stores Numbers exactly, NaN/undefined as missing', () => {
    const a = new BigInt64Array(6)
    const h = new Int32Array(a.buffer)
    const vals = [1723161255342123, -1, -1723161255342123, 0, NaN, 2 ** 53 - 1]
    vals.forEach((v, i) => writeI64(h, i, v))
    assert.deepEqual([...a], [1723161255342123n, -1n, -1723161255342123n, 0n, INT64_MIN, 2n ** 53n - 1n])
  })

  test('reused builder starts clean: missing values, empty strings', () => {
    const b = new FrameBuilder('trade', {}, { capacity: 4 })
    b.appendRow({ sym: b.symbolIndex('x', 'A'), timestamp: 5, local_timestamp: 6, price: 1, amount: 2, side: 'buy', id: 'é' })
    b.build({ seq: 0, session: 's', sent_mono_us: 0 })
    b.appendRow({ sym: b.symbolIndex('x', 'B') })
    const rows = frameToRows(decodeFrame(b.build({ seq: 1, session: 's', sent_mono_us: 0 })))
    assert.deepEqual(rows, [{ sym: 0, timestamp: null, local_timestamp: null, price: null, amount: null, side: 'unknown', id: '' }])
  })
})
