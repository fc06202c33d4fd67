import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { readRecording, newRecordingStats, parseTimestampUs, parseEpochSecondsUs, checkRecordings, readLines, parseLine } from '../src/replay/recording.js'
import { memoryLog } from '../src/log.js'
import { tmpDir, writeGz, headLines, SPOT_0808, BITMEX_WS, COINBASE_WS, DERIBIT_WS, cryptofeedReceived } from './helpers.js'

const t1 = '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"61837.63","q":"0.02","T":1723161255342,"m":true}}'
const t2 = '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":2,"p":"61837.64","q":"0.5","T":1723161255343,"m":false}}'
const t3 = '{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"2","a":"3","A":"4"}}'

async function readAll (files) {
  const stats = newRecordingStats()
  const log = memoryLog()
  const out = []
  for await (const m of readRecording(files, { stats, log })) out.push(m)
  return { out, stats, log }
}

describe('recording reader', () => {
  test('ns-timestamp lines, plain text, with a malformed line in the middle', async () => {
    const dir = tmpDir()
    const file = join(dir, 'plain.txt')
    writeFileSync(file, [
      `1723161254087896568 ${t1}`,
      `1723161254087897000 {"stream":"btcusdt@trade","data":{`, // line 2: truncated JSON
      '',
      `1723161254116723068 ${t3}`,
      `1723161254200000000 ${t2}`
    ].join('\n') + '\n')
    const { out, stats, log } = await readAll([file])
    assert.deepEqual(out.map((m) => [m.line, m.tsUs, m.raw]), [
      [1, 1723161254087896, t1],
      [4, 1723161254116723, t3],
      [5, 1723161254200000, t2]
    ])
    assert.equal(out[0].data.data.p, '61837.63')
    assert.deepEqual(stats, { files: 1, lines: 5, messages: 3, empty: 1, bad: 1, badReasons: { invalid_json: 1 }, control: 0 })
    assert.equal(log.lines.length, 1)
    assert.match(log.lines[0], new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: malformed line skipped \\(invalid JSON`))
  })

  test('Tardis HTTP API slice format (ISO 8601), gzip, CRLF, several files back to back', async () => {
    const dir = tmpDir()
    const a = writeGz(dir, 'a.gz', [`2024-08-08T23:54:15.1234567Z ${t1}`, 'garbage-without-a-space', `2024-08-08T23:54:16.000001Z ${t3}\r`])
    const b = join(dir, 'b.txt')
    writeFileSync(b, `2024-08-09T00:00:00Z ${t2}\r\nnot-a-time ${t2}\r\n`)
    const { out, stats, log } = await readAll([a, b])
    assert.deepEqual(out.map((m) => [m.file, m.line, m.tsUs]), [
      ['a.gz', 1, Date.UTC(2024, 7, 8, 23, 54, 15) * 1000 + 123456],
      ['a.gz', 3, Date.UTC(2024, 7, 8, 23, 54, 16) * 1000 + 1],
      ['b.txt', 1, Date.UTC(2024, 7, 9) * 1000]
    ])
    assert.equal(out[1].raw, t3, 'CR stripped')
    assert.deepEqual(stats, { files: 2, lines: 5, messages: 3, empty: 0, bad: 2, badReasons: { no_separator: 1, bad_timestamp: 1 }, control: 0 })
    assert.match(log.lines[0], /a\.gz:2: malformed line skipped \(expected "<timestamp> <json>"\)/)
    assert.match(log.lines[1], /b\.txt:2: malformed line skipped \(bad timestamp "not-a-time"\)/)
  })

  test('cryptofeed capture format: received lines are messages (µs from epoch seconds), connect/sent lines are control, bad lines still logged', async () => {
    const dir = tmpDir()
    const file = join(dir, 'BITMEX.ws.test')
    const sub = '{"op":"subscribe","args":["trade:XBTUSD"]}'
    const m1 = '{"table":"trade","action":"insert","data":[]}'
    const m2 = '{"info":"Welcome to the BitMEX Realtime API."}'
    writeFileSync(file, [
      'wss://www.bitmex.com/realtime <-> 1626993367.388005',
      `wss://www.bitmex.com/realtime <- 1626993367.874177: ${sub}`,
      `1626993367.875267: ${m2}`,
      '1626993367.9: {"table":',
      `1618677816.8434298: ${m1}`,
      `1626993368: ${m1}`,
      '',
      ''
    ].join('\n'))
    const { out, stats, log } = await readAll([file])
    assert.deepEqual(out.map((m) => [m.line, m.tsUs, m.raw]), [
      [3, 1626993367875267, m2],
      [5, 1618677816843429, m1],
      [6, 1626993368000000, m1]
    ])
    assert.deepEqual(stats, { files: 1, lines: 7, messages: 3, empty: 1, bad: 1, badReasons: { invalid_json: 1 }, control: 2 })
    assert.equal(log.lines.length, 1)
    assert.match(log.lines[0], /BITMEX\.ws\.test:4: malformed line skipped \(invalid JSON/)
    assert.equal(parseEpochSecondsUs('1626993367.1:'), 1626993367100000)
    assert.ok(Number.isNaN(parseEpochSecondsUs('yesterday:')))
  })

  test('the shared cryptofeed captures read without a bad line', async () => {
    for (const [f, control] of [[BITMEX_WS, 4], [COINBASE_WS, 4], [DERIBIT_WS, 2]]) {
      const { out, stats } = await readAll([f])
      assert.equal(stats.bad, 0, f)
      assert.equal(stats.control, control, f)
      assert.equal(out.length, cryptofeedReceived(f).length, f)
      for (let i = 1; i < out.length; i++) assert.ok(out[i].tsUs >= out[i - 1].tsUs, `${f}: receive times never go back`)
    }
  })

  test('a JSON value that is not an object is malformed', async () => {
    const dir = tmpDir()
    const file = writeGz(dir, 'x.gz', ['1723161254087896568 [1,2]', `1723161254087896569 ${t1}`])
    const { out, stats, log } = await readAll([file])
    assert.equal(out.length, 1)
    assert.equal(stats.bad, 1)
    assert.match(log.lines[0], /x\.gz:1: .*not an object/)
  })

  test('missing file: clear error naming it', async () => {
    await assert.rejects(readAll(['/nonexistent/rec.gz']), /recording: cannot read \/nonexistent\/rec\.gz: ENOENT/)
    await assert.rejects(checkRecordings(['/nonexistent/rec.gz']), /recording: cannot read \/nonexistent\/rec\.gz: ENOENT/)
    await assert.rejects(checkRecordings([tmpDir()]), /cannot read .*: not a file/)
  })

  test('empty file: an error naming it, before anything is read', async () => {
    const dir = tmpDir()
    const good = writeGz(dir, 'good.gz', [`1723161254087896568 ${t1}`])
    const empty = join(dir, 'empty.gz')
    writeFileSync(empty, '')
    await assert.rejects(checkRecordings([good, empty]), new RegExp(`recording: ${empty.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is empty \\(0 bytes\\)`))
    await assert.rejects(readAll([empty]), /empty\.gz is empty/)
    await checkRecordings([good])
  })

  test('truncated gzip: every whole line before the cut, then an error naming the file and the last line read', async () => {
    const lines = await headLines(SPOT_0808, 3000)
    const gz = gzipSync(lines.join('\n') + '\n')
    const dir = tmpDir()
    const file = join(dir, 'cut.gz')
    writeFileSync(file, gz.subarray(0, Math.floor(gz.length / 2)))
    const got = []
    let error = null
    try {
      for await (const line of readLines(file)) got.push(line)
    } catch (e) {
      error = e
    }
    assert.ok(got.length > 100 && got.length < lines.length, `a prefix came out (${got.length} lines)`)
    assert.deepEqual(got, lines.slice(0, got.length), 'exactly the recorded lines, none cut')
    assert.ok(error !== null, 'the cut is an error')
    assert.match(error.message, new RegExp(`cut\\.gz \\(a truncated or corrupt gzip\\) after line ${got.length}: unexpected end of file`))
    const stats = newRecordingStats()
    await assert.rejects(async () => { for await (const m of readRecording([file], { stats })) void m }, /cut\.gz \(a truncated or corrupt gzip\)/)
    assert.equal(stats.messages, got.length, 'the good lines before the cut were read')
  })

  test('garbage lines: counted by reason, the first few logged with file:line, the good lines around them kept', async () => {
    const dir = tmpDir()
    const garbage = ['x', '1723161254087896568 {"no', '1723161254087896568 "a string"', 'yesterday {}', '\u0000\u0001\u00ff binary', '12 {"a":1']
    const file = writeGz(dir, 'mixed.gz', [`1723161254087896568 ${t1}`, ...garbage, `1723161254087896569 ${t2}`])
    const stats = newRecordingStats()
    const log = memoryLog()
    const out = []
    for await (const m of readRecording([file], { stats, log, maxBadLineLogs: 3 })) out.push(m)
    assert.deepEqual(out.map((m) => [m.line, m.raw]), [[1, t1], [8, t2]])
    assert.equal(stats.bad, garbage.length)
    assert.deepEqual(stats.badReasons, { no_separator: 1, invalid_json: 2, not_an_object: 1, bad_timestamp: 2 })
    const logged = log.lines.filter((l) => /malformed line skipped/.test(l))
    assert.deepEqual(logged.map((l) => /mixed\.gz:(\d+):/.exec(l)?.[1]), ['2', '3', '4'])
    assert.ok(log.lines.some((l) => /3 malformed lines logged; further ones are only counted/.test(l)))
  })

  test('a file with no usable line is logged; a "line" without end is an error', async () => {
    const dir = tmpDir()
    const junk = writeGz(dir, 'junk.gz', ['not a recording', 'at all'])
    const { out, stats, log } = await readAll([junk])
    assert.equal(out.length, 0)
    assert.equal(stats.bad, 2)
    assert.ok(log.lines.some((l) => /junk\.gz: no usable message in its 2 line\(s\) \(2 malformed\)/.test(l)), log.lines.join('\n'))
    const blob = join(dir, 'blob.bin')
    writeFileSync(blob, Buffer.alloc(4096, 0x41))
    await assert.rejects(async () => { for await (const l of readLines(blob, { maxLineBytes: 1000 })) void l }, /blob\.bin after line 0: line 1 is longer than 1000 bytes/)
  })

  test('timestamp units', () => {
    assert.equal(parseTimestampUs('1723161254087896568'), 1723161254087896)
    assert.equal(parseTimestampUs('1723161254087896'), 1723161254087896)
    assert.equal(parseTimestampUs('1723161254087'), 1723161254087000)
    assert.equal(parseTimestampUs('2024-08-08T23:54:15.5Z'), Date.UTC(2024, 7, 8, 23, 54, 15) * 1000 + 500000)
    assert.ok(Number.isNaN(parseTimestampUs('yesterday')))
  })

  test('lines across the reader\'s pieces: exactly the lines of a plain split, CRLF or not', async () => {
    // ~1.5 MB: several 256 KiB pieces, lines of every length up to 700 kB, so that lines start, end and
    // span whole pieces at every offset
    const lines = []
    for (let k = 0; lines.length < 4000; k++) lines.push(`${k} ` + 'x'.repeat((k * 7919) % 997) + (k % 500 === 0 ? 'y'.repeat(700_000 * (k % 1000 === 0)) : ''))
    const dir = tmpDir()
    for (const eol of ['\n', '\r\n']) {
      const file = join(dir, `pieces${eol.length}.gz`)
      writeFileSync(file, gzipSync(lines.join(eol) + eol))
      const got = []
      for await (const line of readLines(file)) got.push(line)
      assert.equal(got.length, lines.length)
      assert.ok(got.every((line, i) => line === lines[i]), 'every line as written')
    }
  })

  test('a recording of many pieces, ASCII and not, CRLF or not: every line as parseLine reads it', async () => {
    // ~2.5 MB of `<ns> {json}` lines (some with non-ASCII text, some malformed, one of 300 kB): read in
    // pieces by the reading thread, decoded a window at a time (ASCII pieces) or a line at a time
    const lines = []
    for (let k = 0; lines.length < 12000; k++) {
      const ns = String(1723161254087896568n + BigInt(k) * 1000123n)
      const text = k % 1777 === 0 ? 'z'.repeat(300_000) : k % 97 === 0 ? 'é€😀 ünïcödé' : 'x'.repeat(k % 211)
      lines.push(k % 503 === 0 ? `${ns} {"broken":` : k % 601 === 0 ? `garbage ${k}` : `${ns} {"stream":"btcusdt@trade","data":{"t":${k},"note":"${text}"}}`)
    }
    const want = lines.map((line, i) => [i + 1, parseLine(line)]).filter(([, r]) => typeof r === 'object' && r.tsUs !== undefined)
    const dir = tmpDir()
    for (const eol of ['\n', '\r\n']) {
      const file = join(dir, `many${eol.length}.gz`)
      writeFileSync(file, gzipSync(lines.join(eol) + eol))
      const { out, stats } = await readAll([file])
      assert.equal(out.length, want.length)
      assert.ok(out.every((m, i) => m.line === want[i][0] && m.tsUs === want[i][1].tsUs && m.raw === want[i][1].raw), 'every message as parseLine reads it')
      assert.deepEqual(out.filter((m) => m.data.data.note.startsWith('é')).length, want.filter(([, r]) => r.data.data.note.startsWith('é')).length)
      assert.equal(stats.lines, lines.length)
      assert.equal(stats.bad, lines.length - want.length)
    }
  })

  test('every line reads as parseLine reads it: the quick path for <ns> {object} lines, the rest as before', async () => {
    const lines = [
      `1723161254087896568 ${t1}`, // 19-digit ns
      `172316125408789656 ${t2}`, // 18 digits
      `9999999999999999999 ${t1}`, // beyond 2^53 µs: parseLine's string cut
      `17231612540878965x8 ${t1}`, // not all digits
      `1723161254087896568 [1,2]`, // an array
      `1723161254087896568 {"stream":`, // truncated
      `1723161254087896568 ${t3} `, // trailing blank
      `1723161254087 ${t2}`, // ms
      `2024-08-08T23:54:15.5Z ${t1}`, // ISO
      ` 1723161254087896568 ${t1}` // leading blank
    ]
    const dir = tmpDir()
    const file = join(dir, 'forms.txt')
    writeFileSync(file, lines.join('\n') + '\n')
    const { out, stats } = await readAll([file])
    const want = lines.map((line, i) => [i + 1, parseLine(line)]).filter(([, r]) => typeof r === 'object' && r.tsUs !== undefined)
    assert.deepEqual(out.map((m) => [m.line, { tsUs: m.tsUs, raw: m.raw, data: m.data }]), want)
    assert.equal(stats.messages, want.length)
    assert.equal(stats.bad, lines.length - want.length)
  })
})

