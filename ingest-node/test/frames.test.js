// parseFrame's templates give exactly JSON.parse's object, or nothing: on every frame of the shared
// recordings, and on trade frames edited a character at a time.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { fromTemplate, parseFrame } from '../src/replay/frames.js'
import { readRecording } from '../src/replay/recording.js'
import { SHARED_DATA } from './helpers.js'

const RECORDINGS = ['binance-ws', 'cryptofeed-ws'].flatMap((dir) =>
  readdirSync(resolve(SHARED_DATA, dir)).map((f) => resolve(SHARED_DATA, dir, f)))

/** JSON.parse's value, or the error it threw. @param {string} text */
const parsed = (text) => {
  try {
    return { value: JSON.parse(text) }
  } catch (e) {
    return { error: e }
  }
}

test('every frame of the shared recordings parses as JSON.parse parses it; the trade frames by a template', async () => {
  let frames = 0
  let templated = 0
  /** @type {Record<string, number>} trade frames (by the recording's own text) per file */
  const trades = {}
  const viaTemplate = {}
  for (const file of RECORDINGS) {
    for await (const rec of readRecording([file])) {
      frames++
      const want = JSON.parse(rec.raw)
      // the reader's own value (parseFrame), with the key order JSON.parse gives
      assert.deepStrictEqual(rec.data, want, `${rec.file}:${rec.line}`)
      assert.equal(JSON.stringify(rec.data), JSON.stringify(want), `${rec.file}:${rec.line}`)
      const t = fromTemplate(rec.raw)
      if (t !== undefined) {
        templated++
        viaTemplate[rec.file] = (viaTemplate[rec.file] ?? 0) + 1
        assert.equal(JSON.stringify(t), JSON.stringify(want), `${rec.file}:${rec.line}`)
      }
      if (/^\{"stream":"[a-z_]+@trade","data":\{"e":"trade",/.test(rec.raw)) trades[rec.file] = (trades[rec.file] ?? 0) + 1
    }
  }
  assert.ok(frames > 200_000, `${frames} frames`)
  // every Binance trade frame of the four binance-ws recordings (spot and both futures) is templated,
  // and nothing else is
  for (const f of ['spot_btcusdt_20240808.gz', 'spot_btcusdt_20240809.gz', 'usdm_btcusdt_20240808.gz', 'cm_btcusd_perp_20240808.gz']) {
    assert.ok(trades[f] > 1000, `${f}: ${trades[f]} trade frames`)
    assert.equal(viaTemplate[f], trades[f], f)
  }
  assert.equal(templated, Object.values(trades).reduce((a, b) => a + b, 0))
})

/** A seeded PRNG (mulberry32), so that a failure can be replayed. @param {number} seed */
function random (seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('a trade frame edited a character at a time: the template gives JSON.parse\'s value or nothing', async () => {
  const spot = '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}'
  const futures = '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}'
  // the characters JSON cares about, digits, a control character, non-ASCII and a lone surrogate
  const alphabet = ['"', '\\', '{', '}', '[', ']', ',', ':', ' ', '\t', '0', '1', '9', '-', '+', '.', 'e', 'E',
    't', 'f', 'n', 'u', 'l', 'x', '\u0001', '\u001f', 'é', '€', '\ud800', '\\u0041', '\\"', 'null', 'true', '1.5']
  const rnd = random(20241207)
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)]
  let matched = 0
  let invalid = 0
  for (let i = 0; i < 40_000; i++) {
    const base = i % 2 === 0 ? spot : futures
    let text = base
    for (let edits = 1 + Math.floor(rnd() * 3); edits > 0; edits--) {
      const at = Math.floor(rnd() * (text.length + 1))
      const op = rnd()
      if (op < 0.4) text = text.slice(0, at) + pick(alphabet) + text.slice(at + 1) // replace
      else if (op < 0.8) text = text.slice(0, at) + pick(alphabet) + text.slice(at) // insert
      else text = text.slice(0, at) + text.slice(at + 1) // delete
    }
    const want = parsed(text)
    const got = fromTemplate(text)
    if (want.error !== undefined) {
      invalid++
      assert.equal(got, undefined, `the template took invalid JSON: ${text}`)
      assert.throws(() => parseFrame(text), SyntaxError)
      continue
    }
    if (got === undefined) continue
    matched++
    assert.equal(JSON.stringify(got), JSON.stringify(want.value), text)
    assert.deepStrictEqual(got, want.value, text)
  }
  // the edits reach both sides: frames still taken by a template, and invalid ones refused
  assert.ok(matched > 1000, `${matched} edited frames matched a template`)
  assert.ok(invalid > 10_000, `${invalid} edited frames were invalid JSON`)
})

test('integers the template would not read exactly, and other values, are left to JSON.parse', () => {
  const frame = (E, m = 'true') => `{"stream":"btcusdt@trade","data":{"e":"trade","E":${E},"s":"BTCUSDT","t":1,"p":"1.0","q":"2.0","T":5,"m":${m},"M":true}}`
  assert.notEqual(fromTemplate(frame('123456789012345')), undefined) // 15 digits: exact
  for (const E of ['1234567890123456', '12345678901234567890', '-1', '1.0', '1e3', '"1"', 'null']) {
    assert.equal(fromTemplate(frame(E)), undefined, E)
    assert.deepStrictEqual(parseFrame(frame(E)), JSON.parse(frame(E)), E)
  }
  assert.equal(fromTemplate(frame('01')), undefined)
  assert.throws(() => parseFrame(frame('01')), SyntaxError) // as JSON.parse: no leading zero
  assert.equal(fromTemplate(frame(1, 'null')), undefined)
  assert.equal(fromTemplate(frame(1).replace('"BTCUSDT"', '"BTC\\u0055SDT"')), undefined)
  assert.equal(parseFrame(frame(1).replace('"BTCUSDT"', '"BTC\\u0055SDT"')).data.s, 'BTCUSDT')
})
