import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readRecording, newRecordingStats, parseTimestampUs } from '../src/replay/recording.js'
import { memoryLog } from '../src/log.js'
import { tmpDir, writeGz } from './helpers.js'

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
    assert.deepEqual(stats, { files: 1, lines: 5, messages: 3, empty: 1, bad: 1 })
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
    assert.deepEqual(stats, { files: 2, lines: 5, messages: 3, empty: 0, bad: 2 })
    assert.match(log.lines[0], /a\.gz:2: malformed line skipped \(expected "<timestamp> <json>"\)/)
    assert.match(log.lines[1], /b\.txt:2: malformed line skipped \(bad timestamp "not-a-time"\)/)
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
    await assert.rejects(readAll(['/nonexistent/rec.gz']), /\/nonexistent\/rec\.gz/)
  })

  test('timestamp units', () => {
    assert.equal(parseTimestampUs('1723161254087896568'), 1723161254087896)
    assert.equal(parseTimestampUs('1723161254087896'), 1723161254087896)
    assert.equal(parseTimestampUs('1723161254087'), 1723161254087000)
    assert.equal(parseTimestampUs('2024-08-08T23:54:15.5Z'), Date.UTC(2024, 7, 8, 23, 54, 15) * 1000 + 500000)
    assert.ok(Number.isNaN(parseTimestampUs('yesterday')))
  })
})
