// The recording (--record-dir): `<ns> <json>` lines in one gzip file per exchange and UTC hour of the
// local receive time, complete gzip files, read back by the replay's own reader; and a recording of a
// replay replays to the same normalized messages.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, createWriteStream } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { Recorder, hourOf } from '../src/recorder.js'
import { readRecording } from '../src/replay/recording.js'
import { openReplay } from '../src/sources/replay.js'
import { spawn } from 'node:child_process'
import { Pull } from 'zeromq'
import { decodeFrame } from '../src/wire/index.js'
import { Batcher } from '../src/batcher.js'
import { runPipeline } from '../src/pipeline.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { openSource } from '../src/sources/index.js'
import { tmpDir, headLines, writeGz, collect, SPOT_0808, DERIBIT_WS, INGEST_DIR, REPO_ROOT } from './helpers.js'

// 2024-08-08T23:59:59.000 UTC and the next hour, in ns (worked out by hand: 1723161599 s)
const T_2359 = 1_723_161_599_000_000_000n
const HOUR = 3_600_000_000_000n

/** The lines of a gzip file, decompressed by zlib itself (every member). @param {string} path */
const gunzipLines = (path) => gunzipSync(readFileSync(path)).toString('utf8').split('\n').filter((l) => l !== '')

describe('recorder', () => {
  test('one file per exchange and UTC hour of the receive time, named <exchange>-<YYYY-MM-DDTHH>.gz, each a complete gzip', async () => {
    const dir = tmpDir()
    let now = T_2359
    const rec = new Recorder({ dir, now: () => now, blockBytes: 64, flushMs: 0 })
    const sent = { binance: [], deribit: [] }
    for (let i = 0; i < 10; i++) {
      for (const ex of ['binance', 'deribit']) {
        const msg = { stream: `${ex}@trade`, data: { i, p: '61652.00000000' } }
        rec.write(ex, msg)
        sent[ex].push(`${now} ${JSON.stringify(msg)}`)
      }
      now += 200_000_000n // 0.2 s: the hour changes after the 5th message (23:59:59.8 -> 00:00:00.0)
    }
    const counts = await rec.close()
    assert.deepEqual(readdirSync(dir).sort(), ['binance', 'deribit'])
    for (const ex of ['binance', 'deribit']) {
      assert.deepEqual(readdirSync(join(dir, ex)).sort(), [`${ex}-2024-08-08T23.gz`, `${ex}-2024-08-09T00.gz`])
      assert.deepEqual(gunzipLines(join(dir, ex, `${ex}-2024-08-08T23.gz`)), sent[ex].slice(0, 5))
      assert.deepEqual(gunzipLines(join(dir, ex, `${ex}-2024-08-09T00.gz`)), sent[ex].slice(5))
    }
    assert.equal(counts.messages, 20)
    assert.equal(counts.files, 4)
    assert.equal(counts.errors, 0)
    assert.equal(counts.lost, 0)
    assert.equal(counts.bytes, [...sent.binance, ...sent.deribit].reduce((a, l) => a + Buffer.byteLength(l) + 1, 0))
  })

  test('a line after close() is not recorded and counted as after_close, not lost', async () => {
    const dir = tmpDir()
    const rec = new Recorder({ dir, now: () => T_2359, flushMs: 0 })
    rec.write('binance', { stream: 'btcusdt@trade', data: { t: 1 } })
    const counts = await rec.close()
    rec.write('binance', { stream: 'btcusdt@trade', data: { t: 2 } })
    assert.deepEqual(gunzipLines(join(dir, 'binance', 'binance-2024-08-08T23.gz')), [`${T_2359} {"stream":"btcusdt@trade","data":{"t":1}}`])
    assert.deepEqual({ ...rec.stats, bytes: 0, written: 0 }, { ...counts, bytes: 0, written: 0, after_close: 1 })
    assert.equal(rec.stats.lost, 0)
    assert.equal(rec.stats.messages, 1)
  })

  test('hourOf: the UTC hour of a time in ns', () => {
    assert.equal(hourOf(T_2359), '2024-08-08T23')
    assert.equal(hourOf(T_2359 + 1_000_000_000n), '2024-08-09T00')
    assert.equal(hourOf(T_2359 + HOUR), '2024-08-09T00')
  })

  test('the replay reader reads a recording back: every line, its receive time in µs, its JSON', async () => {
    const dir = tmpDir()
    let now = T_2359 - HOUR // 22:59:59: all in hour 22
    const rec = new Recorder({ dir, now: () => now, blockBytes: 100, flushMs: 0 })
    const msgs = Array.from({ length: 50 }, (_, i) => ({ stream: 'btcusdt@trade', data: { e: 'trade', t: i, p: `${61000 + i}.5`, q: '0.001', T: 1723161255342 + i, m: i % 2 === 0 } }))
    const times = []
    for (const m of msgs) {
      times.push(now)
      rec.write('binance', m)
      now += 1_234_567n
    }
    await rec.close()
    const file = join(dir, 'binance', 'binance-2024-08-08T22.gz')
    const back = []
    for await (const r of readRecording([file])) back.push(r)
    assert.deepEqual(back.map((r) => r.data), msgs)
    assert.deepEqual(back.map((r) => r.tsUs), times.map((ns) => Number(ns / 1000n)))
    assert.ok(gunzipSync(readFileSync(file)).length > 0)
  })

  test('a failed write is logged and counted (its lines lost), the next block is written, nothing throws', async () => {
    const dir = tmpDir()
    const lines = []
    let opens = 0
    const rec = new Recorder({
      dir,
      now: () => T_2359 - HOUR,
      blockBytes: 1,
      flushMs: 0,
      log: (l) => lines.push(l),
      openFile: (path) => (++opens === 1 ? createWriteStream(join(dir, 'no-such-dir', 'x.gz')) : createWriteStream(path, { flags: 'a' }))
    })
    rec.write('binance', { a: 1 })
    await rec.close().catch((e) => assert.fail(e))
    const rec2 = new Recorder({ dir, now: () => T_2359 - HOUR, blockBytes: 1, flushMs: 0, openFile: (path) => (++opens === 2 ? createWriteStream(join(dir, 'no-such-dir', 'y.gz')) : createWriteStream(path, { flags: 'a' })) })
    rec2.write('binance', { b: 1 })
    rec2.write('binance', { c: 2 })
    const c2 = await rec2.close()
    assert.equal(rec.stats.errors, 1)
    assert.equal(rec.stats.lost, 1)
    assert.match(lines.join('\n'), /recording: cannot write 1 line\(s\) to .*binance-2024-08-08T22\.gz: ENOENT/)
    assert.equal(c2.errors, 1)
    assert.equal(c2.lost, 1)
    assert.equal(c2.messages, 2)
    assert.deepEqual(gunzipLines(join(dir, 'binance', 'binance-2024-08-08T22.gz')).map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1))), [{ c: 2 }])
  })

  test('busy past the high-water mark, and whenDrained() resolves once the blocks are written', async () => {
    const dir = tmpDir()
    const rec = new Recorder({ dir, now: () => T_2359, blockBytes: 1000, flushMs: 0, highWaterBytes: 5000 })
    for (let i = 0; i < 100; i++) rec.write('binance', { i, pad: 'x'.repeat(90) })
    assert.ok(rec.queued > 5000, `queued ${rec.queued}`)
    assert.equal(rec.busy, true)
    await rec.whenDrained()
    assert.ok(rec.queued <= 2500, `queued ${rec.queued} after whenDrained`)
    await rec.close()
    assert.equal(rec.queued, 0)
    assert.equal(gunzipLines(join(dir, 'binance', 'binance-2024-08-08T23.gz')).length, 100)
  })

  test('a replay with book data, recorded, replays from the recording to the same trades and book snapshots', { timeout: 60000 }, async () => {
    const lines = await headLines(SPOT_0808, 3000)
    const original = writeGz(tmpDir(), 'slice.gz', lines)
    const dir = tmpDir()
    const recorder = new Recorder({ dir })
    const opts = { exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade', 'book_snapshot'], bookDepth: 5, bookIntervalMs: 0 }
    const first = await collect(openReplay({ ...opts, files: [original], recorder }))
    const counts = await recorder.close()
    const files = readdirSync(join(dir, 'binance')).map((f) => join(dir, 'binance', f))
    const second = await collect(openReplay({ ...opts, files }))
    assert.deepEqual(first.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    assert.deepEqual(second.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    const strip = (ms) => ms.filter((m) => m.type === 'trade' || m.type === 'book_snapshot').map(({ localTimestamp, ...m }) => (m.type === 'book_snapshot' ? { ...m, timestamp: m.timestamp.valueOf() } : m))
    const a = strip(first)
    const b = strip(second)
    // the raw slice's trade lines, counted by the test
    const trades = lines.filter((l) => l.includes('"stream":"btcusdt@trade"')).length
    assert.equal(a.filter((m) => m.type === 'trade').length, trades)
    assert.ok(a.filter((m) => m.type === 'book_snapshot').length > 100)
    assert.deepEqual(b, a)
    // every recorded line: a raw message tardis-dev received, or its REST depth snapshot
    const recorded = files.flatMap(gunzipLines)
    assert.equal(recorded.length, counts.messages)
    assert.equal(recorded.filter((l) => l.includes('"stream":"btcusdt@trade"')).length, trades)
    assert.ok(recorded.some((l) => l.includes('"stream":"btcusdt@depthSnapshot"')), 'the depth snapshot is recorded')
  })

  test('SIGTERM in the middle of a recorded replay: the file is a complete gzip holding every message counted', { timeout: 30000 }, async () => {
    const sample = join(REPO_ROOT, 'data/sample/binance-spot-btcusdt-trades.gz')
    const dir = tmpDir()
    const pull = new Pull()
    await pull.bind('tcp://127.0.0.1:*')
    const child = spawn(process.execPath, [join(INGEST_DIR, 'src/cli.js'), '--source', 'replay', '--files', sample, '--speed', '1', '--endpoint', pull.lastEndpoint, '--record-dir', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => { stderr += d })
    const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
    let signalled = false
    for await (const [msg] of pull) {
      const f = decodeFrame(msg)
      if (!signalled && f.header.type === 'trade') { signalled = true; child.kill('SIGTERM') }
      if (f.header.type === 'end') break
    }
    pull.close()
    assert.equal(await exited, 0, stderr)
    const summary = JSON.parse(stderr.trim().split('\n').at(-1).slice('ingest: summary '.length))
    assert.equal(summary.reason, 'source_closed')
    const files = readdirSync(join(dir, 'binance'))
    assert.equal(files.length, 1)
    const recorded = gunzipLines(join(dir, 'binance', files[0])) // throws on a truncated gzip
    assert.equal(recorded.length, summary.recording.messages)
    // a trade the closing WebSocket may still deliver (the sample's second is 31 ms after the first) is
    // counted as after_close, not lost
    assert.equal(summary.recording.lost, 0)
    // the recorded trades are the first ones of the sample, payloads unchanged (replayed at real time: a few)
    const trades = recorded.filter((l) => l.includes('@trade')).map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)))
    const sampleTrades = (await headLines(sample, trades.length)).map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)))
    assert.ok(trades.length >= 1 && trades.length < 8020, `${trades.length} trades recorded`)
    assert.deepEqual(trades, sampleTrades)
  })

  test('the pipeline stops pulling from the source while the recorder is busy, and goes on once it drained', { timeout: 10000 }, async () => {
    let pulled = 0
    const source = {
      async * [Symbol.asyncIterator] () {
        for (let i = 0; i < 3; i++) {
          pulled++
          yield { type: 'trade', exchange: 'binance', symbol: 'BTCUSDT', id: String(i), price: 1, amount: 1, side: 'buy', timestampUs: 1, localTimestampUs: 2 }
        }
        yield { type: 'end', reason: 'replay_finished' }
      }
    }
    let release
    const drained = new Promise((resolve) => { release = resolve })
    const recorder = { busy: true, whenDrained: () => drained.then(() => { recorder.busy = false }) }
    const sender = { send: async () => {}, close: async () => true }
    const batcher = new Batcher({ send: (f) => { f.build(); return sender.send(f) }, subscribed: { binance: ['BTCUSDT'] } })
    const run = runPipeline({ source, batcher, sender, recorder, startInfo: { source: 'test', exchanges: ['binance'], data_types: ['trade'], speed: 'max' } })
    await sleep(100)
    assert.equal(pulled, 1, 'one value taken, then the pipeline waits for the recorder')
    release()
    const result = await run
    assert.equal(pulled, 3)
    assert.equal(result.reason, 'replay_finished')
    assert.equal(result.counts.rows.trade, 3)
  })

  test('several exchanges in one session: one file per exchange, each replays to that exchange\'s messages', { timeout: 60000 }, async () => {
    const binance = writeGz(tmpDir(), 'slice.gz', await headLines(join(REPO_ROOT, 'data/sample/binance-spot-btcusdt-trades.gz'), 800))
    const dir = tmpDir()
    const recorder = new Recorder({ dir })
    const streams = [
      { exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'], files: [binance] },
      { exchange: 'deribit', symbols: ['ETH-30JUL21-2800-C', 'BTC-24SEP21-8000-P'], dataTypes: ['option_summary'], files: [DERIBIT_WS] }
    ]
    const merged = await collect(openSource({ source: 'replay', streams, speed: 'max', recorder }))
    await recorder.close()
    assert.deepEqual(merged.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    assert.deepEqual(readdirSync(dir).sort(), ['binance', 'deribit'])
    const data = (ms) => ms.filter((m) => m.type !== 'end' && m.type !== 'disconnect').map(({ localTimestamp, ...m }) => m)
    for (const s of streams) {
      const files = readdirSync(join(dir, s.exchange)).map((f) => join(dir, s.exchange, f))
      assert.equal(files.length, 1, s.exchange)
      const again = await collect(openReplay({ ...s, files, speed: 'max' }))
      assert.deepEqual(again.at(-1), { type: 'end', reason: 'replay_finished', error: null }, s.exchange)
      const expected = data(merged.filter((m) => m.exchange === s.exchange))
      assert.ok(expected.length > 0, s.exchange)
      assert.deepEqual(data(again), expected, s.exchange)
    }
  })
})
