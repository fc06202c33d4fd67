// The ingester's Prometheus metrics (--metrics-address), /health, and --log-format json, on real runs of
// the CLI: a PULL bound here plays the processor, and the metrics are scraped while the ingester waits
// for it to hang up after the end frame, so they can be compared with that frame and with the frames
// received, and with counts the test works out from the recording itself.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pull } from 'zeromq'
import { decodeFrame } from '../src/wire/index.js'
import { parseAddress, IngestMetrics } from '../src/metrics.js'
import { Sender } from '../src/sender.js'
import { Batcher } from '../src/batcher.js'
import { Journal, journalFiles, scanFile } from '../src/journal.js'
import { runPipeline } from '../src/pipeline.js'
import { openSynthetic } from '../src/sources/synthetic.js'
import { startReplayServer } from '../src/replay/server.js'
import { readRecording } from '../src/replay/recording.js'
import { INGEST_DIR, REPO_ROOT, tmpDir, headLines, writeGz, expectedTrades, closedPort } from './helpers.js'

const SAMPLE = join(REPO_ROOT, 'data/sample/binance-spot-btcusdt-trades.gz')

/**
 * Prometheus text format -> `name{a="x",b="y"}` (labels as printed) -> value.
 * @param {string} text
 */
function parseMetrics (text) {
  /** @type {Map<string, number>} */
  const out = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const sp = line.lastIndexOf(' ')
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)))
  }
  return out
}

/** @param {Map<string, number>} m @param {string} key */
const value = (m, key) => {
  assert.ok(m.has(key), `metric ${key} missing`)
  return /** @type {number} */ (m.get(key))
}

/**
 * Starts the CLI; resolves its stderr text so far whenever asked, and its exit code.
 * @param {string[]} args @param {Record<string, string>} [env]
 */
function start (args, env = {}) {
  const child = spawn(process.execPath, [join(INGEST_DIR, 'src/cli.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, stderr: () => stderr, exited }
}

/** The metrics address the ingester logged. @param {() => string} stderr */
async function metricsAddress (stderr) {
  for (let i = 0; i < 200; i++) {
    const m = /metrics: \/metrics and \/health on http:\/\/(\S+)/.exec(stderr())
    if (m !== null) return m[1]
    await sleep(25)
  }
  throw new Error(`no metrics address logged:\n${stderr()}`)
}

describe('metrics', () => {
  test('a replay scraped after its end frame: the ledger counters equal the end frame, the frame metrics the frames received, and the counts of the recording', { timeout: 60000 }, async () => {
    const tradeLines = expectedTrades(await headLines(SAMPLE, Infinity)).length // the sample's @trade lines, parsed here
    assert.equal(tradeLines, 8020)
    const dir = tmpDir()
    const pull = new Pull()
    await pull.bind('tcp://127.0.0.1:*')
    const run = start(['--source', 'replay', '--exchange', 'binance', '--symbols', 'btcusdt', '--files', SAMPLE, '--endpoint', pull.lastEndpoint,
      '--metrics-address', '127.0.0.1:0', '--record-dir', join(dir, 'rec'), '--journal-dir', join(dir, 'journal'), '--when-busy', 'wait', '--max-batch', '500'])
    const frames = []
    for await (const [msg] of pull) {
      const f = decodeFrame(msg)
      frames.push({ header: f.header, bytes: msg.length })
      if (f.header.type === 'end') break
    }
    // the ingester now waits for the hang-up: everything it counts is final
    const address = await metricsAddress(run.stderr)
    const m = parseMetrics(await (await fetch(`http://${address}/metrics`)).text())
    const health = await fetch(`http://${address}/health`)
    const healthBody = await health.json()
    pull.close()
    assert.equal(await run.exited, 0, run.stderr())
    const summaryLine = run.stderr().trim().split('\n').at(-1)
    const summary = JSON.parse(summaryLine.slice(summaryLine.indexOf('summary ') + 'summary '.length))
    const end = frames.at(-1).header
    const c = end.counts

    // the ledger, as the end frame carries it (the end frame itself is enqueued and encoded by now)
    assert.equal(value(m, 'mdth_ingest_ledger_normalized_total{type="trade"}'), c.normalized.trade)
    assert.equal(value(m, 'mdth_ingest_ledger_rows_total{type="trade"}'), c.rows.trade)
    assert.equal(value(m, 'mdth_ingest_ledger_frames_total{type="start"}'), c.frames_by_type.start)
    assert.equal(value(m, 'mdth_ingest_ledger_frames_total{type="trade"}'), c.frames_by_type.trade)
    assert.equal(value(m, 'mdth_ingest_ledger_frames_total{type="end"}'), 1)
    assert.equal(value(m, 'mdth_ingest_ledger_bytes_total'), c.bytes + frames.at(-1).bytes)
    for (const kind of ['read', 'sent', 'received', 'skipped']) assert.equal(value(m, `mdth_ingest_ledger_raw_total{kind="${kind}"}`), c.raw[kind], kind)
    assert.deepEqual([...m.keys()].filter((k) => k.startsWith('mdth_ingest_ledger_dropped_total')), [])
    assert.deepEqual(summary.counts, c)

    // worked out independently: the trade lines of the recording, the frames this PULL received
    assert.equal(c.rows.trade, tradeLines)
    assert.equal(value(m, 'mdth_ingest_messages_total{exchange="binance",type="trade"}'), tradeLines)
    assert.equal(value(m, 'mdth_ingest_raw_messages_total{exchange="binance"}'), tradeLines)
    const byType = {}
    for (const f of frames) {
      const t = (byType[f.header.type] ??= { frames: 0, bytes: 0, rows: 0 })
      t.frames++
      t.bytes += f.bytes
      t.rows += f.header.n ?? 0
    }
    assert.deepEqual(Object.keys(byType).sort(), ['end', 'start', 'trade'])
    assert.ok(byType.trade.frames >= Math.ceil(tradeLines / 500), `${byType.trade.frames} trade frames`)
    for (const [type, t] of Object.entries(byType)) {
      assert.equal(value(m, `mdth_ingest_frames_sent_total{type="${type}"}`), t.frames, type)
      assert.equal(value(m, `mdth_ingest_frame_bytes_count{type="${type}"}`), t.frames, type)
      assert.equal(value(m, `mdth_ingest_frame_bytes_sum{type="${type}"}`), t.bytes, type)
      assert.equal(value(m, `mdth_ingest_frame_rows_sum{type="${type}"}`), t.rows, type)
    }
    assert.equal(byType.trade.rows, tradeLines)
    assert.ok(frames.filter((f) => f.header.type === 'trade').every((f) => f.header.n <= 500))
    assert.equal(value(m, 'mdth_ingest_sent_bytes_total'), frames.reduce((a, f) => a + f.bytes, 0))
    assert.equal(value(m, 'mdth_ingest_journal_records_total'), frames.length)
    assert.equal(value(m, 'mdth_ingest_journal_files_total'), 1)
    assert.equal(value(m, 'mdth_ingest_frames_journal_only_total'), 0)
    assert.equal(value(m, 'mdth_ingest_blocked_sends_total'), summary.sender.blockedSends)
    assert.equal(value(m, 'mdth_ingest_processor_connected'), 1)

    // the recording: its lines, read back here, are what was counted (the trades and the answer to the subscribe)
    const recDir = join(dir, 'rec', 'binance')
    const recorded = readdirSync(recDir).flatMap((f) => gunzipSync(readFileSync(join(recDir, f))).toString('utf8').trim().split('\n'))
    assert.equal(value(m, 'mdth_ingest_recorded_messages_total{exchange="binance"}'), recorded.length)
    assert.equal(recorded.filter((l) => l.includes('"stream":"btcusdt@trade"')).length, tradeLines)
    assert.equal(recorded.length, tradeLines + 1)
    assert.equal(summary.recording.messages, recorded.length)
    assert.equal(summary.recording.lost, 0)

    assert.equal(health.status, 200)
    assert.equal(healthBody.status, 'ok')
    assert.equal(healthBody.processor_connected, true)
    assert.deepEqual(summary.metrics, { address, bind_errors: 0 })
  })

  test('/health: 503 naming the reason once no processor has been connected for longer than --health-down-s', { timeout: 30000 }, async () => {
    const port = await closedPort()
    const run = start(['--source', 'synthetic', '--rate', '200', '--symbols-count', '2', '--endpoint', `tcp://127.0.0.1:${port}`,
      '--metrics-address', '127.0.0.1:0', '--health-down-s', '0.3', '--linger-ms', '200'])
    const address = await metricsAddress(run.stderr)
    let res
    for (let i = 0; i < 100; i++) {
      res = await fetch(`http://${address}/health`)
      if (res.status === 503) break
      await res.body?.cancel()
      await sleep(50)
    }
    assert.equal(res?.status, 503)
    const body = await res.json()
    assert.equal(body.status, 'unhealthy')
    assert.equal(body.processor_connected, false)
    assert.match(body.reasons.join('\n'), new RegExp(`no processor connected at tcp://127\\.0\\.0\\.1:${port} for \\d+ s \\(limit 0\\.3 s\\)`))
    const m = parseMetrics(await (await fetch(`http://${address}/metrics`)).text())
    assert.equal(value(m, 'mdth_ingest_healthy'), 0)
    assert.equal(value(m, 'mdth_ingest_processor_connected'), 0)
    run.child.kill('SIGTERM')
    assert.equal(await run.exited, 0, run.stderr())
  })

  test('tardis-realtime whose exchange goes away: /health 503 naming the exchange; the recording holds the live frames', { timeout: 30000 }, async () => {
    const lines = await headLines(SAMPLE, 500)
    // a stand-in exchange: the replay server plays the lines, closes the socket after the last one, and
    // is then shut, so tardis-dev's reconnects are refused
    const server = await startReplayServer({ exchange: 'binance', recording: readRecording([writeGz(tmpDir(), 'slice.gz', lines)]), speed: 'max' })
    const dir = tmpDir()
    const pull = new Pull()
    await pull.bind('tcp://127.0.0.1:*')
    const run = start(['--source', 'tardis-realtime', '--symbols', 'btcusdt', '--endpoint', pull.lastEndpoint, '--metrics-address', '127.0.0.1:0',
      '--health-down-s', '0.5', '--record-dir', dir], { WSS_URL_BINANCE: server.url })
    const frames = pull[Symbol.asyncIterator]()
    let trades = 0
    let disconnects = 0
    while (disconnects === 0) {
      const f = decodeFrame((await frames.next()).value[0])
      if (f.header.type === 'trade') trades += f.header.n
      if (f.header.type === 'disconnect') disconnects++
    }
    await server.close()
    assert.equal(trades, 500)
    const address = await metricsAddress(run.stderr)
    let res
    for (let i = 0; i < 100; i++) {
      res = await fetch(`http://${address}/health`)
      if (res.status === 503) break
      await res.body?.cancel()
      await sleep(50)
    }
    assert.equal(res?.status, 503)
    const body = await res.json()
    assert.match(body.reasons.join('\n'), /^binance: connection down for [\d.]+ s \(limit 0\.5 s\)$/)
    assert.equal(body.exchanges.binance.connected, false)
    assert.equal(body.processor_connected, true)
    const m = parseMetrics(await (await fetch(`http://${address}/metrics`)).text())
    assert.equal(value(m, 'mdth_ingest_exchange_connected{exchange="binance"}'), 0)
    // the drop, then one per refused reconnect (tardis-dev yields a disconnect for each)
    const dropped = value(m, 'mdth_ingest_disconnects_total{exchange="binance"}')
    assert.ok(dropped >= 1, `${dropped} disconnects`)
    run.child.kill('SIGTERM')
    for (;;) {
      const f = decodeFrame((await frames.next()).value[0])
      if (f.header.type === 'end') break
    }
    pull.close()
    assert.equal(await run.exited, 0, run.stderr())
    // what the exchange sent, as recorded: the slice's trade payloads, in order
    const recDir = join(dir, 'binance')
    const recorded = readdirSync(recDir).flatMap((f) => gunzipSync(readFileSync(join(recDir, f))).toString('utf8').trim().split('\n'))
    const payload = (/** @type {string} */ l) => JSON.parse(l.slice(l.indexOf(' ') + 1))
    assert.deepEqual(recorded.map(payload).filter((p) => p.stream === 'btcusdt@trade'), lines.map(payload))
  })

  test('a metrics port that cannot be bound: one line naming it and the cause, counted, and the replay goes on', { timeout: 30000 }, async () => {
    const busy = createServer()
    await new Promise((resolve) => busy.listen(0, '127.0.0.1', resolve))
    const taken = `127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (busy.address()).port}`
    const pull = new Pull()
    await pull.bind('tcp://127.0.0.1:*')
    const lines = (await headLines(SAMPLE, 1000))
    const run = start(['--source', 'replay', '--files', SAMPLE, '--endpoint', pull.lastEndpoint, '--metrics-address', taken])
    let trades = 0
    for await (const [msg] of pull) {
      const f = decodeFrame(msg)
      if (f.header.type === 'trade') trades += f.header.n
      if (f.header.type === 'end') break
    }
    pull.close()
    busy.close()
    assert.equal(await run.exited, 0, run.stderr())
    const log = run.stderr().trim().split('\n')
    assert.equal(log.filter((l) => l.includes(`metrics: cannot listen on ${taken}: EADDRINUSE`)).length, 1, log.join('\n'))
    const summary = JSON.parse(log.at(-1).slice('ingest: summary '.length))
    assert.deepEqual(summary.metrics, { address: null, bind_errors: 1 })
    assert.equal(trades, 8020)
    assert.equal(expectedTrades(lines).length, 1000) // the sample is trade lines only
  })

  test('--log-format json: one JSON object a line {ts (UTC, µs), level, logger, msg}, secrets redacted, the summary last', { timeout: 30000 }, async () => {
    const pull = new Pull()
    await pull.bind('tcp://127.0.0.1:*')
    const run = start(['--source', 'replay', '--files', SAMPLE, '--endpoint', pull.lastEndpoint, '--log-format', 'json'])
    for await (const [msg] of pull) if (decodeFrame(msg).header.type === 'end') break
    pull.close()
    assert.equal(await run.exited, 0, run.stderr())
    const lines = run.stderr().trim().split('\n').map((l) => JSON.parse(l))
    for (const l of lines) {
      assert.deepEqual(Object.keys(l), ['ts', 'level', 'logger', 'msg'])
      assert.match(l.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
      assert.equal(l.logger, 'ingest')
      assert.equal(l.level, 'INFO')
    }
    assert.match(lines.at(-1).msg, /^summary \{/)
    assert.equal(JSON.parse(lines.at(-1).msg.slice('summary '.length)).counts.rows.trade, 8020)
    assert.ok(Math.abs(Date.parse(lines[0].ts) - Date.now()) < 60_000)

    // $MDTH_LOG_FORMAT=json (what the processor's --log-format json sets) does the same, bad arguments included;
    // a secret in a logged value is masked
    const bad = start(['--source', 'replay', '--files', '/nonexistent/a.gz?token=hunter2', '--speed', 'x'], { MDTH_LOG_FORMAT: 'json' })
    assert.equal(await bad.exited, 2)
    const first = JSON.parse(bad.stderr().split('\n')[0])
    assert.match(first.msg, /^bad arguments: --speed must be a number/)
    assert.equal(first.level, 'ERROR')
    const failing = start(['--source', 'replay', '--files', '/nonexistent/a.gz?token=hunter2', '--endpoint', 'tcp://127.0.0.1:1', '--linger-ms', '100'], { MDTH_LOG_FORMAT: 'json' })
    assert.equal(await failing.exited, 1)
    const all = failing.stderr().trim().split('\n').map((l) => JSON.parse(l))
    assert.ok(all.some((l) => l.msg.includes('token=***')), failing.stderr())
    assert.ok(!failing.stderr().includes('hunter2'), failing.stderr())
  })

  test('a replay whose connection is dropped once (--cut-after): one disconnect, one reconnect, per exchange', { timeout: 30000 }, async () => {
    const pull = new Pull()
    await pull.bind('tcp://127.0.0.1:*')
    const run = start(['--source', 'replay', '--files', SAMPLE, '--cut-after', '3000', '--endpoint', pull.lastEndpoint, '--metrics-address', '127.0.0.1:0'])
    const types = []
    for await (const [msg] of pull) {
      const f = decodeFrame(msg)
      types.push(f.header.type)
      if (f.header.type === 'end') break
    }
    const address = await metricsAddress(run.stderr)
    const m = parseMetrics(await (await fetch(`http://${address}/metrics`)).text())
    pull.close()
    assert.equal(await run.exited, 0, run.stderr())
    assert.equal(types.filter((t) => t === 'disconnect').length, 1)
    assert.equal(value(m, 'mdth_ingest_disconnects_total{exchange="binance"}'), 1)
    assert.equal(value(m, 'mdth_ingest_reconnects_total{exchange="binance"}'), 1)
    assert.equal(value(m, 'mdth_ingest_messages_total{exchange="binance",type="disconnect"}'), 1)
    assert.equal(value(m, 'mdth_ingest_messages_total{exchange="binance",type="trade"}'), 8020)
    assert.equal(value(m, 'mdth_ingest_frames_sent_total{type="disconnect"}'), 1)
  })

  test('--when-busy journal without a processor: the frames ZeroMQ could not queue are journaled only, and counted so', { timeout: 20000 }, async () => {
    const dir = join(tmpDir(), 'journal')
    const journal = new Journal({ dir }).open()
    const sender = new Sender({ endpoint: `tcp://127.0.0.1:${await closedPort()}`, sndhwm: 1, busy: 'journal', journal, lingerMs: 100 })
    const source = openSynthetic({ symbolsCount: 3, rate: 'max', total: 1000, startUs: 1_700_000_000_000_000 })
    const batcher = new Batcher({ send: (f) => sender.send(f), maxBatch: 100, subscribed: { synthetic: source.symbols }, journal })
    const metrics = new IngestMetrics({ batcher, sender, source, exchanges: ['synthetic'], journal, info: { session: batcher.session, source: 'synthetic', version: 'test' } })
    const result = await runPipeline({ source, batcher, sender, startInfo: { source: 'synthetic', exchanges: ['synthetic'], data_types: ['trade'], speed: 'max' } })
    journal.close()
    const m = parseMetrics(await metrics.registry.metrics())
    // every frame (start, the trade frames, end) is in the journal: its records, counted by the file itself
    const frames = 1 + result.counts.frames_by_type.trade + 1
    const [file] = journalFiles(dir)
    assert.equal(scanFile(file.path, file.first).records, frames)
    assert.equal(result.counts.rows.trade, 1000)
    assert.ok(result.counts.frames_by_type.trade >= 10)
    // ZeroMQ queues a few frames for the connection it keeps trying (high-water mark 1); the rest waited in the journal only
    const sent = [...m].filter(([k]) => k.startsWith('mdth_ingest_frames_sent_total')).reduce((a, [, v]) => a + v, 0)
    const journalOnly = value(m, 'mdth_ingest_frames_journal_only_total')
    assert.ok(journalOnly >= frames - 4, `${journalOnly} of ${frames} frames journaled only`)
    assert.equal(sent + journalOnly, frames)
    assert.equal(journalOnly, sender.stats.journalOnly)
    assert.equal(value(m, 'mdth_ingest_journal_records_total'), frames)
    assert.equal(value(m, 'mdth_ingest_journal_files_total'), 1)
    assert.equal(value(m, 'mdth_ingest_processor_connected'), 0)
  })

  test('parseAddress: HOST:PORT, IPv6 in brackets, port 0; anything else is an error', () => {
    assert.deepEqual(parseAddress('127.0.0.1:9465'), { host: '127.0.0.1', port: 9465 })
    assert.deepEqual(parseAddress('[::1]:0'), { host: '::1', port: 0 })
    assert.deepEqual(parseAddress('localhost:80'), { host: 'localhost', port: 80 })
    for (const bad of ['9465', ':9465', '127.0.0.1', '127.0.0.1:99999', '::1:9465', '[x]:1', 'a:b']) assert.throws(() => parseAddress(bad), /HOST:PORT/, bad)
  })
})
