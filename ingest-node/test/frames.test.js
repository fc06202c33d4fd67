// The templated frames (src/replay/frames.js) give exactly JSON.parse's object, or nothing: on every
// line of the shared recordings, and on trade frames edited a character at a time.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { scanTemplates, templatedFrame } from '../src/replay/frames.js'
import { quickStamps, readLinePieces, readRecording } from '../src/replay/recording.js'
import { SHARED_DATA } from './helpers.js'

const RECORDINGS = ['binance-ws', 'cryptofeed-ws'].flatMap((dir) =>
  readdirSync(resolve(SHARED_DATA, dir)).map((f) => resolve(SHARED_DATA, dir, f)))

/** A Binance trade frame, by the recording's own text. */
const TRADE = /^\{"stream":"[a-z_]+@trade","data":\{"e":"trade",/

/**
 * Each line's templated object (undefined: no template matched), the lines scanned as one piece.
 * @param {string[]} lines JSON texts
 */
function scanned (lines) {
  const bytes = Buffer.from(lines.join('\n'), 'latin1')
  const jsonAt = new Int32Array(lines.length)
  const ends = new Int32Array(lines.length)
  for (let k = 0, at = 0; k < lines.length; k++) {
    jsonAt[k] = at
    ends[k] = at + lines[k].length
    at = ends[k] + 1
  }
  const scan = scanTemplates(bytes, jsonAt, ends, lines.length)
  const text = (s, e) => bytes.toString('latin1', s, e)
  return lines.map((_, k) => scan.which[k] === -1 ? undefined : templatedFrame(scan, k, text))
}

test('every Binance trade frame of the shared recordings is templated, as JSON.parse parses it; nothing else is', async () => {
  /** @type {Record<string, {trades: number, templated: number}>} */
  const per = {}
  for (const file of RECORDINGS) {
    const count = per[basename(file)] = { trades: 0, templated: 0 }
    for await (const piece of readLinePieces(file)) {
      if (!piece.bytes.every((b) => b < 0x80)) continue // the reading thread scans ASCII pieces only
      const { jsonAt } = quickStamps(piece)
      const scan = scanTemplates(piece.bytes, jsonAt, piece.ends, piece.n)
      const text = (s, e) => piece.bytes.toString('latin1', s, e)
      for (let k = 0; k < piece.n; k++) {
        if (jsonAt[k] === -1) continue
        const json = text(jsonAt[k], piece.ends[k])
        if (TRADE.test(json)) count.trades++
        if (scan.which[k] === -1) continue
        count.templated++
        const got = templatedFrame(scan, k, text)
        // JSON.stringify compares the key order too
        assert.equal(JSON.stringify(got), JSON.stringify(JSON.parse(json)), `${file}: ${json}`)
        assert.deepStrictEqual(got, JSON.parse(json))
      }
    }
  }
  for (const f of ['spot_btcusdt_20240808.gz', 'spot_btcusdt_20240809.gz', 'usdm_btcusdt_20240808.gz', 'cm_btcusd_perp_20240808.gz']) {
    assert.ok(per[f].trades > 1000, `${f}: ${per[f].trades} trade frames`)
    assert.equal(per[f].templated, per[f].trades, f)
  }
  // the cryptofeed captures' lines have other prefixes (`<epoch s>: `): JSON.parse's
  for (const f of readdirSync(resolve(SHARED_DATA, 'cryptofeed-ws'))) assert.equal(per[f].templated, 0, f)
})

test('the reader gives every frame of the shared recordings as JSON.parse does', async () => {
  let frames = 0
  for (const file of RECORDINGS) {
    for await (const rec of readRecording([file])) {
      frames++
      const want = JSON.parse(rec.raw)
      assert.equal(JSON.stringify(rec.data), JSON.stringify(want), `${rec.file}:${rec.line}`)
      assert.deepStrictEqual(rec.data, want, `${rec.file}:${rec.line}`)
    }
  }
  assert.ok(frames > 200_000, `${frames} frames`)
})

/** A seeded PRNG (mulberry32), so that a failure replays. @param {number} seed */
function random (seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('trade frames edited a character at a time, in one piece: a template gives JSON.parse\'s value or nothing', () => {
  const spot = '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}'
  const futures = '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}'
  // the characters JSON cares about, digits, control characters and escapes (ASCII: the pieces scanned)
  const alphabet = ['"', '\\', '{', '}', '[', ']', ',', ':', ' ', '\t', '\r', '0', '1', '9', '-', '+', '.', 'e', 'E',
    't', 'f', 'n', 'u', 'l', 'x', '\u0001', '\u001f', '\u007f', '\\u0041', '\\"', 'null', 'true', 'false', '1.5']
  const rnd = random(20241207)
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)]
  const lines = []
  for (let i = 0; i < 40_000; i++) {
    let text = i % 2 === 0 ? spot : futures
    for (let edits = 1 + Math.floor(rnd() * 3); edits > 0; edits--) {
      const at = Math.floor(rnd() * (text.length + 1))
      const op = rnd()
      if (op < 0.4) text = text.slice(0, at) + pick(alphabet) + text.slice(at + 1) // replace
      else if (op < 0.8) text = text.slice(0, at) + pick(alphabet) + text.slice(at) // insert
      else text = text.slice(0, at) + text.slice(at + 1) // delete
    }
    lines.push(text)
  }
  const got = scanned(lines)
  let matched = 0
  let invalid = 0
  for (let k = 0; k < lines.length; k++) {
    let want
    try {
      want = JSON.parse(lines[k])
    } catch {
      invalid++
      assert.equal(got[k], undefined, `a template took invalid JSON: ${lines[k]}`)
      continue
    }
    if (got[k] === undefined) continue
    matched++
    assert.equal(JSON.stringify(got[k]), JSON.stringify(want), lines[k])
    assert.deepStrictEqual(got[k], want, lines[k])
  }
  // the edits reach both sides: frames still templated, and invalid ones refused
  assert.ok(matched > 1000, `${matched} edited frames templated`)
  assert.ok(invalid > 10_000, `${invalid} edited frames were invalid JSON`)
})

test('integers a template would not read exactly, non-ASCII, escapes and other values are left to JSON.parse', () => {
  const frame = (E, s = 'BTCUSDT', m = 'true') => `{"stream":"btcusdt@trade","data":{"e":"trade","E":${E},"s":"${s}","t":1,"p":"1.0","q":"2.0","T":5,"m":${m},"M":true}}`
  const [ok, zero] = scanned([frame('123456789012345'), frame('0')]) // 15 digits: exact
  assert.equal(ok.data.E, 123456789012345)
  assert.equal(zero.data.E, 0)
  const others = ['1234567890123456', '12345678901234567890', '-1', '01', '1.0', '1e3', '"1"', 'null', '']
  assert.deepStrictEqual(scanned(others.map((E) => frame(E))), others.map(() => undefined))
  assert.deepStrictEqual(scanned([frame(1, 'BTC\\u0055SDT'), frame(1, 'BTCUSDT', 'null'), frame(1, 'BTC\u00e9')]), [undefined, undefined, undefined])
  // a line cut short, and the line after it, in one piece
  const [cut, next] = scanned([frame(1).slice(0, -1), frame(2)])
  assert.equal(cut, undefined)
  assert.equal(next.data.E, 2)
})
