// Issue 14 item 1, end to end through tardis-dev: Binance book data needs a REST depth snapshot that a
// recording may not have. The replay scans the recording first, leaves book_snapshot out when a symbol
// has none (so nothing goes through tardis-dev's failing snapshot path and every trade comes out, paced
// or not), waits for a snapshot that comes later in the file, and checks itself at the end (ledgerCounts).
// Expected counts are worked out here from the raw files.
import { test, describe, before } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { openReplay } from '../src/sources/replay.js'
import { memoryLog } from '../src/log.js'
import { SPOT_0808, SHARED_DATA, REPO_ROOT, tmpDir, headLines, writeGz, expectedTrades, collect, assertTrade } from './helpers.js'

const SAMPLE = `${REPO_ROOT}/data/sample/binance-spot-btcusdt-trades.gz`
const SPOT_0809 = `${SHARED_DATA}/binance-ws/spot_btcusdt_20240809.gz`
const ALL = 1e9

/** @type {Record<string, string[]>} */
const lines = {}
before(async () => {
  for (const f of [SAMPLE, SPOT_0808, SPOT_0809]) lines[f] = await headLines(f, ALL)
})

/** @param {string[]} ls */
const tradeLines = (ls) => ls.filter((l) => l.includes('"stream":"btcusdt@trade"'))
/** @param {string[]} ls */
const hasSnapshot = (ls) => ls.some((l) => l.includes('"lastUpdateId"'))

/**
 * The first 700 lines of 0808 (4.8 s) with its REST depth snapshot (line 8) moved to line 526, 3.45 s
 * of recording after the start: later than tardis-dev's request (~1.1 s after connecting).
 */
function lateSnapshot () {
  const head = lines[SPOT_0808].slice(0, 700)
  const at = head.findIndex((l) => l.includes('"lastUpdateId"'))
  assert.equal(at, 7)
  return [...head.slice(0, at), ...head.slice(at + 1, 526), head[at], ...head.slice(526)]
}

const opts = (files, more = {}) => ({ replayPath: 'websocket', exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade', 'book_snapshot'], files, ...more })

/**
 * A finished replay: every trade of `ls` in order, one end (replay_finished), no disconnect, and a ledger
 * whose raw frames add up.
 * @param {any} source @param {any[]} msgs @param {string[]} ls
 */
function assertComplete (source, msgs, ls) {
  const exp = expectedTrades(ls)
  const trades = msgs.filter((m) => m.type === 'trade')
  assert.equal(trades.length, exp.length)
  trades.forEach((m, i) => assertTrade(m, exp[i], 'binance', `trade #${i}`))
  assert.deepEqual(msgs.at(-1), { type: 'end', reason: 'replay_finished', error: null })
  assert.equal(msgs.filter((m) => m.type === 'disconnect').length, 0)
  const c = source.ledgerCounts()
  assert.equal(c.raw.read, ls.length)
  assert.equal(c.raw.sent, c.raw.received, 'tardis-dev received every frame sent')
  assert.equal(c.raw.sent + c.raw.skipped, c.raw.read)
  assert.equal(c.normalized.trade, exp.length)
  return c
}

describe('replay: recordings without (or with a late) depth snapshot', () => {
  test('the demo sample, paced (speed 50), trade + book_snapshot: every trade, book_snapshot left out with one clear line', { timeout: 60000 }, async () => {
    const ls = lines[SAMPLE]
    assert.equal(hasSnapshot(ls), false)
    assert.equal(tradeLines(ls).length, ls.length, 'the sample is trades only')
    const log = memoryLog()
    const source = openReplay(opts([SAMPLE], { speed: 50, log }))
    assert.deepEqual(source.dataTypes, ['trade'], 'what the start frame lists')
    assert.deepEqual(log.lines.filter((l) => /book_snapshot/.test(l)), [
      `book_snapshot not available for binance in this recording: no depth snapshot of btcusdt in ${SAMPLE}`
    ])
    const t0 = Date.now()
    const msgs = await collect(source)
    const ls0 = ls[0].split(' ')[0]
    const spanMs = (Number(ls.at(-1).split(' ')[0].slice(0, -6)) - Number(ls0.slice(0, -6)))
    assert.ok(Date.now() - t0 >= spanMs / 50 - 200, 'it was paced')
    const c = assertComplete(source, msgs, ls)
    assert.deepEqual(c, { raw: { read: ls.length, sent: ls.length, received: ls.length, skipped: 0 }, normalized: { trade: ls.length }, internal: {} })
    assert.equal(source.stats.server.restRequests, 0, 'no REST call at all')
  })

  test('the demo sample at max speed, trade + book_snapshot: every trade', { timeout: 60000 }, async () => {
    const source = openReplay(opts([SAMPLE], { speed: 'max' }))
    assert.deepEqual(source.dataTypes, ['trade'])
    assertComplete(source, await collect(source), lines[SAMPLE])
  })

  test('0809 alone (depth updates, no snapshot of its own) at max: every trade', { timeout: 60000 }, async () => {
    const ls = lines[SPOT_0809]
    assert.equal(hasSnapshot(ls), false)
    assert.equal(tradeLines(ls).length, 10147)
    const source = openReplay(opts([SPOT_0809], { speed: 'max' }))
    assert.deepEqual(source.dataTypes, ['trade'])
    assertComplete(source, await collect(source), ls)
  })

  test('0808 + 0809 at max: book_snapshot kept (0808 has the snapshot), every trade and book snapshots', { timeout: 60000 }, async () => {
    const ls = [...lines[SPOT_0808], ...lines[SPOT_0809]]
    assert.equal(tradeLines(ls).length, 19904)
    const log = memoryLog()
    const source = openReplay(opts([SPOT_0808, SPOT_0809], { speed: 'max', log }))
    assert.deepEqual(source.dataTypes, ['trade', 'book_snapshot'])
    assert.ok(!log.lines.some((l) => /not available/.test(l)), log.lines.join('\n'))
    const msgs = await collect(source)
    const c = assertComplete(source, msgs, ls)
    const books = msgs.filter((m) => m.type === 'book_snapshot')
    assert.ok(books.length > 1000, `book snapshots (${books.length})`)
    assert.equal(c.normalized.book_snapshot, books.length)
    assert.ok(c.internal.book_change > 0)
    assert.equal(source.stats.server.restNotFound, 0)
  })

  test('a snapshot later in the file than tardis-dev\'s request: the REST answer waits for it, no drop', { timeout: 60000 }, async () => {
    const moved = lateSnapshot()
    const file = writeGz(tmpDir(), 'late-snapshot.gz', moved)
    const source = openReplay(opts([file], { speed: 1, bookIntervalMs: 0, log: memoryLog() }))
    assert.deepEqual(source.dataTypes, ['trade', 'book_snapshot'])
    const msgs = await collect(source)
    assertComplete(source, msgs, moved)
    assert.ok(msgs.some((m) => m.type === 'book_snapshot'), 'book snapshots come out')
    assert.equal(source.stats.server.restWaits, 1)
    assert.equal(source.stats.server.restNotFound, 0)
  })

  test('a REST snapshot failure mid-run: a disconnect, the replay goes on, and the end says what happened (reason error)', { timeout: 60000 }, async () => {
    const moved = lateSnapshot()
    const file = writeGz(tmpDir(), 'late-snapshot.gz', moved)
    const source = openReplay(opts([file], { speed: 1, restWaitMs: 1, log: memoryLog() }))
    const msgs = await collect(source)
    assert.ok(msgs.some((m) => m.type === 'disconnect'), 'the failed snapshot closed the connection')
    const end = msgs.at(-1)
    assert.equal(end.type, 'end')
    assert.equal(end.reason, 'error')
    const c = source.ledgerCounts()
    const m = /^replay: .*tardis-dev's REST snapshot request failed (\d+) time\(s\) \(last: Response code 404/.exec(end.error)
    assert.ok(m !== null, end.error)
    // one disconnect per failed snapshot; more when tardis-dev later gets the snapshot but its book
    // updates no longer overlap it (the recording's snapshot is older than the reconnect)
    assert.ok(Number(m[1]) >= 1 && c.normalized.disconnect >= Number(m[1]), `${m[1]} failures, ${c.normalized.disconnect} disconnects`)
    assert.ok(end.error.includes(`server sent ${c.raw.sent} frames, tardis-dev received ${c.raw.received} (`), end.error)
    assert.ok(c.raw.received <= c.raw.sent)
  })
})

describe('replay: bad recordings end with reason error naming the file', () => {
  const run = async (files, more = {}) => {
    const log = memoryLog()
    const msgs = await collect(openReplay({ exchange: 'binance', symbols: ['btcusdt'], files, speed: 'max', log, ...more }))
    const ends = msgs.filter((m) => m.type === 'end')
    assert.equal(ends.length, 1)
    assert.equal(msgs.at(-1), ends[0])
    return { msgs, end: ends[0], log }
  }

  test('missing file', async () => {
    const { end, msgs } = await run(['/nope/missing.gz'])
    assert.equal(msgs.length, 1)
    assert.equal(end.reason, 'error')
    assert.match(end.error, /^replay: recording: cannot read \/nope\/missing\.gz: ENOENT/)
  })

  test('empty file', async () => {
    const file = join(tmpDir(), 'empty.gz')
    writeFileSync(file, '')
    const { end } = await run([file], { dataTypes: ['trade', 'book_snapshot'] })
    assert.equal(end.reason, 'error')
    assert.equal(end.error, `replay: recording: ${file} is empty (0 bytes)`)
  })

  test('truncated gzip: the trades before the cut, then an error naming the file and line', { timeout: 30000 }, async () => {
    const ls = lines[SAMPLE].slice(0, 3000)
    const gz = gzipSync(ls.join('\n') + '\n')
    const file = join(tmpDir(), 'cut.gz')
    writeFileSync(file, gz.subarray(0, Math.floor(gz.length * 0.6)))
    const { msgs, end } = await run([file])
    const m = /^recording: cannot read .*cut\.gz \(a truncated or corrupt gzip\) after line (\d+): unexpected end of file$/.exec(end.error)
    assert.ok(m !== null, end.error)
    assert.equal(end.reason, 'error')
    const n = Number(m[1])
    const trades = msgs.filter((x) => x.type === 'trade')
    assert.equal(trades.length, n, 'every line read before the cut came out')
    expectedTrades(ls.slice(0, n)).forEach((e, i) => assertTrade(trades[i], e, 'binance', `trade #${i}`))
  })

  test('garbage only: nothing usable, counted by reason', async () => {
    const file = writeGz(tmpDir(), 'garbage.gz', ['hello', 'world {', '1723161254087896568 [1]'])
    const { end } = await run([file])
    assert.equal(end.reason, 'error')
    assert.equal(end.error, `replay: nothing usable in ${file}: 3 line(s), 0 empty, 3 malformed (no_separator 1, bad_timestamp 1, not_an_object 1)`)
  })

  test('garbage lines among good ones: counted, the good lines all come out', { timeout: 30000 }, async () => {
    const ls = lines[SAMPLE].slice(0, 500)
    const file = writeGz(tmpDir(), 'holes.gz', [...ls.slice(0, 100), 'junk', ls[100].slice(0, 50), ...ls.slice(101)])
    const { msgs, end, log } = await run([file])
    assert.equal(end.reason, 'replay_finished')
    const exp = expectedTrades([...ls.slice(0, 100), ...ls.slice(101)])
    const trades = msgs.filter((x) => x.type === 'trade')
    assert.equal(trades.length, exp.length)
    trades.forEach((t, i) => assertTrade(t, exp[i], 'binance', `trade #${i}`))
    assert.ok(log.lines.some((l) => /holes\.gz:101: malformed line skipped \(expected/.test(l)))
    assert.ok(log.lines.some((l) => /holes\.gz:102: malformed line skipped \(invalid JSON/.test(l)))
  })

  test('no message for the requested symbol', { timeout: 30000 }, async () => {
    const file = writeGz(tmpDir(), 'btc.gz', lines[SAMPLE].slice(0, 200))
    const { end } = await run([file], { symbols: ['ethusdt'] })
    assert.equal(end.reason, 'error')
    assert.equal(end.error, `replay: no message for ethusdt (trade) in ${file}: 200 message(s) read, none of a subscribed stream`)
  })
})
