// The CLI as the processor sees it: a PULL in this process, the ingester in a child process.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { Pull } from 'zeromq'
import { decodeFrame, frameToRows } from '../src/wire/index.js'
import { parseCli, startInfoOf, subscribedOf } from '../src/cli.js'
import { openReplay } from '../src/sources/replay.js'
import { memoryLog } from '../src/log.js'
import { INGEST_DIR, SPOT_0808, DERIBIT_WS, tmpDir, headLines, writeGz, expectedTrades, closedPort, collect } from './helpers.js'

/**
 * Runs the CLI against a PULL bound here; returns its exit code, stderr lines and the decoded frames.
 * @param {string[]} args
 * @param {{env?: Record<string, string>, onFrame?: (f: any, child: import('node:child_process').ChildProcess) => void}} [o]
 */
async function runCli (args, { env = {}, onFrame } = {}) {
  const pull = new Pull()
  await pull.bind('tcp://127.0.0.1:*')
  const child = spawn(process.execPath, [join(INGEST_DIR, 'src/cli.js'), '--endpoint', pull.lastEndpoint, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
  const frames = []
  for await (const [msg] of pull) {
    const f = decodeFrame(msg)
    frames.push(f)
    onFrame?.(f, child)
    if (f.header.type === 'end') break
  }
  pull.close() // as the processor does: hanging up acknowledges the end frame
  const code = await exited
  return { code, lines: stderr.trim().split('\n'), frames }
}

describe('cli', () => {
  test('replay: start, every trade, end(replay_finished); exit 0; summary last', { timeout: 30000 }, async () => {
    const lines = await headLines(SPOT_0808, 1500)
    const file = writeGz(tmpDir(), 'slice.gz', lines)
    const { code, lines: log, frames } = await runCli(['--source', 'replay', '--exchange', 'binance', '--symbols', 'btcusdt', '--data-types', 'trade', '--files', file, '--speed', 'max'])
    assert.equal(code, 0, log.join('\n'))
    assert.ok(log.every((l) => l.startsWith('ingest: ')), log.join('\n'))
    const summaryLine = log.at(-1)
    assert.match(summaryLine, /^ingest: summary \{/)
    const summary = JSON.parse(summaryLine.slice('ingest: summary '.length))
    const trades = expectedTrades(lines).length
    assert.equal(summary.reason, 'replay_finished')
    assert.equal(summary.counts.rows.trade, trades)
    assert.deepEqual(summary.counts.normalized, { trade: trades })
    assert.equal(frames[0].header.type, 'start')
    assert.equal(frames[0].header.source, 'replay')
    assert.deepEqual(frames[0].header.symbols, [['binance', 'BTCUSDT']])
    assert.equal(frames.filter((f) => f.header.type === 'trade').reduce((a, f) => a + f.header.n, 0), trades)
    const end = frames.at(-1).header
    assert.equal(end.reason, 'replay_finished')
    assert.equal(end.counts.rows.trade, trades)
    assert.equal(end.counts.frames, frames.length - 1)
    assert.equal(end.counts.frames, end.seq)
    assert.deepEqual(summary.counts, end.counts, 'the summary carries the end frame\'s counts')
    assert.deepEqual(frames.map((f) => f.header.seq), frames.map((_, i) => i))
  })

  test('replay: the start frame lists only the data types tardis-dev can stream for the exchange', { timeout: 30000 }, async () => {
    const lines = await headLines(SPOT_0808, 600)
    const file = writeGz(tmpDir(), 'slice.gz', lines)
    const { code, lines: log, frames } = await runCli(['--source', 'replay', '--exchange', 'binance', '--symbols', 'btcusdt', '--data-types', 'trade,liquidation,option_summary', '--files', file])
    assert.equal(code, 0, log.join('\n'))
    assert.deepEqual(frames[0].header.data_types, ['trade'])
    assert.equal(log.filter((l) => /^ingest: (liquidation|option_summary) not available for binance: /.test(l)).length, 2, log.join('\n'))
    assert.equal(frames.at(-1).header.counts.rows.trade, expectedTrades(lines).length)
  })

  test('tardis-realtime without a reachable exchange: end(error) and a non-zero exit', { timeout: 15000 }, async () => {
    const port = await closedPort()
    const { code, lines: log, frames } = await runCli(['--source', 'tardis-realtime', '--symbols', 'btcusdt'], { env: { WSS_URL_BINANCE: `ws://127.0.0.1:${port}/stream` } })
    assert.notEqual(code, 0)
    assert.deepEqual(frames.map((f) => f.header.type), ['start', 'end'])
    assert.equal(frames[1].header.reason, 'error')
    assert.match(frames[1].header.error, new RegExp(`ws://127\\.0\\.0\\.1:${port}/stream: connect ECONNREFUSED`))
    assert.match(log.at(-1), /^ingest: summary .*"reason":"error"/)
  })

  test('SIGTERM: end(source_closed) and exit 0', { timeout: 15000 }, async () => {
    let signalled = false
    const { code, frames } = await runCli(['--source', 'synthetic', '--rate', '2000', '--symbols-count', '3'], {
      onFrame: (f, child) => {
        if (!signalled && f.header.type === 'trade') { signalled = true; child.kill('SIGTERM') }
      }
    })
    assert.equal(code, 0)
    assert.equal(frames[0].header.type, 'start')
    assert.equal(frames.at(-1).header.type, 'end')
    assert.equal(frames.at(-1).header.reason, 'source_closed')
    assert.ok(frames.some((f) => f.header.type === 'trade'))
  })

  test('--session and --ledger-interval-ms: every frame has that session; each ledger frame counts the rows before it', { timeout: 15000 }, async () => {
    const { code, frames, lines: log } = await runCli(['--source', 'synthetic', '--rate', '2000', '--total', '600', '--symbols-count', '3', '--session', '00ff00ff', '--ledger-interval-ms', '40'])
    assert.equal(code, 0, log.join('\n'))
    assert.ok(frames.every((f) => f.header.session === '00ff00ff'))
    assert.match(log[0], /^ingest: session 00ff00ff: synthetic /)
    const ledgers = frames.filter((f) => f.header.type === 'ledger')
    assert.ok(ledgers.length >= 2, `ledger frames: ${ledgers.length}`)
    for (const f of [...ledgers, frames.at(-1)]) {
      const before = frames.slice(0, f.header.seq)
      const c = f.header.counts
      assert.equal(c.frames, f.header.seq)
      assert.equal(c.frames_by_type.ledger ?? 0, before.filter((b) => b.header.type === 'ledger').length)
      assert.equal(c.rows.trade ?? 0, before.filter((b) => b.header.type === 'trade').reduce((a, b) => a + b.header.n, 0))
      assert.equal(c.normalized.trade ?? 0, c.rows.trade ?? 0)
      assert.deepEqual(c.dropped, {})
    }
    assert.equal(frames.at(-1).header.counts.rows.trade, 600)
  })

  test('bad arguments: exit 2 with the reason', { timeout: 10000 }, async () => {
    const child = spawn(process.execPath, [join(INGEST_DIR, 'src/cli.js'), '--source', 'replay'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d) => { err += d })
    const code = await new Promise((resolve) => child.on('exit', resolve))
    assert.equal(code, 2)
    assert.match(err, /--files is required with --source replay/)
  })
})

describe('cli: several exchanges', () => {
  const several = ['--exchanges', 'binance,deribit', '--symbols', 'binance:btcusdt,ethusdt', '--symbols', 'deribit:BTC-PERPETUAL']

  test('one exchange: the options as before (no streams in the source options)', () => {
    const cfg = parseCli(['--source', 'replay', '--files', 'a.gz,b.gz'])
    assert.deepEqual(cfg.sourceOptions, { exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'], bookDepth: 10, bookIntervalMs: 100, files: ['a.gz', 'b.gz'], speed: 'max', cutAfter: 0 })
    assert.deepEqual(cfg.streams, [{ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'] }])
    const one = parseCli(['--source', 'tardis-realtime', '--exchange', 'bitmex', '--symbols', 'XBTUSD', '--data-types', 'trade,liquidation'])
    assert.deepEqual(one.sourceOptions, { exchange: 'bitmex', symbols: ['XBTUSD'], dataTypes: ['trade', 'liquidation'], bookDepth: 10, bookIntervalMs: 100 })
    assert.deepEqual(parseCli(['--source', 'tardis-realtime', '--exchange', 'deribit', '--symbols', 'deribit:BTC-PERPETUAL']).sourceOptions.symbols, ['BTC-PERPETUAL'], 'a prefix is allowed')
    assert.equal(parseCli(['--source', 'synthetic']).sourceOptions.exchange, 'synthetic')
    assert.equal(parseCli(['--source', 'synthetic', '--exchange', 'binance']).sourceOptions.exchange, 'synthetic')
  })

  test('symbols, data types and files per exchange; a bare value for every exchange without its own; the last value wins', () => {
    const cfg = parseCli(['--source', 'replay', ...several, '--data-types', 'trade,book_snapshot', '--data-types', 'deribit:trade,derivative_ticker',
      '--files', 'binance:/d/a.gz,/d/b.gz', '--files', 'deribit:/d/DERIBIT.ws.1.0', '--speed', '10'])
    assert.deepEqual(cfg.streams, [
      { exchange: 'binance', symbols: ['btcusdt', 'ethusdt'], dataTypes: ['trade', 'book_snapshot'] },
      { exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['trade', 'derivative_ticker'] }
    ])
    assert.deepEqual(cfg.sourceOptions, {
      streams: [
        { exchange: 'binance', symbols: ['btcusdt', 'ethusdt'], dataTypes: ['trade', 'book_snapshot'], files: ['/d/a.gz', '/d/b.gz'] },
        { exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['trade', 'derivative_ticker'], files: ['/d/DERIBIT.ws.1.0'] }
      ],
      bookDepth: 10,
      bookIntervalMs: 100,
      speed: 10,
      cutAfter: 0
    })
    const live = parseCli(['--source', 'tardis-realtime', '--exchanges', 'bitfinex-derivatives,bitmex', '--symbols', 'BTCF0:USTF0', '--symbols', 'bitmex:XBTUSD', '--symbols', 'bitmex:ETHUSD'])
    assert.deepEqual(live.sourceOptions.streams, [
      { exchange: 'bitfinex-derivatives', symbols: ['BTCF0:USTF0'], dataTypes: ['trade'] },
      { exchange: 'bitmex', symbols: ['ETHUSD'], dataTypes: ['trade'] }
    ], 'a colon in a symbol is not a prefix; data types default to trade')
    assert.deepEqual(subscribedOf(live, {}), { 'bitfinex-derivatives': ['BTCF0:USTF0'], bitmex: ['ETHUSD'] })
  })

  test('mistakes are named', () => {
    const bad = (args, re) => assert.throws(() => parseCli(['--source', 'replay', ...args]), re)
    bad(['--exchange', 'binance', '--exchanges', 'binance,deribit'], /--exchange \(one\) or --exchanges \(several\), not both/)
    bad(['--exchanges', 'binance,binance'], /lists binance twice/)
    bad(['--exchanges', 'binance,deribit', '--symbols', 'binance:btcusdt', '--files', 'binance:a.gz'], /no symbols for deribit: --symbols deribit:<symbol>/)
    bad([...several, '--files', 'binance:a.gz'], /--files is required with --source replay: --files deribit:<recording>/)
    bad([...several, '--files', 'a.gz'], /with several exchanges, say whose recordings they are/)
    bad([...several, '--symbols', 'bitmex:XBTUSD', '--files', 'x'], /--symbols bitmex:XBTUSD: bitmex is not one of the exchanges \(binance, deribit\)/)
    assert.throws(() => parseCli(['--source', 'synthetic', ...several]), /synthetic streams one exchange/)
  })

  test('the start frame: one exchange as before; several add `streams` and name the exchange in each reason', () => {
    const one = parseCli(['--source', 'replay', '--files', 'a.gz', '--data-types', 'trade,liquidation'])
    const oneInfo = startInfoOf(one, { dataTypes: ['trade'], unavailable: [{ type: 'liquidation', reason: 'tardis-dev has no liquidation mapper' }] })
    assert.deepEqual(oneInfo, { source: 'replay', exchanges: ['binance'], data_types: ['trade'], unavailable: { liquidation: 'tardis-dev has no liquidation mapper' }, speed: 'max' })
    assert.deepEqual(startInfoOf(one, {}).data_types, ['trade', 'liquidation'], 'a source that does not say: what was asked')
    const cfg = parseCli(['--source', 'replay', ...several, '--files', 'binance:a.gz', '--files', 'deribit:b.txt'])
    const info = startInfoOf(cfg, {
      dataTypes: ['trade', 'derivative_ticker'],
      unavailable: [{ type: 'derivative_ticker', reason: 'binance: no mapper' }],
      streams: [
        { exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'], unavailable: [{ type: 'derivative_ticker', reason: 'no mapper' }] },
        { exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['trade', 'derivative_ticker'], unavailable: [] }
      ]
    })
    assert.deepEqual(info, {
      source: 'replay',
      exchanges: ['binance', 'deribit'],
      data_types: ['trade', 'derivative_ticker'],
      unavailable: { derivative_ticker: 'binance: no mapper' },
      speed: 'max',
      streams: {
        binance: { data_types: ['trade'], unavailable: { derivative_ticker: 'no mapper' } },
        deribit: { data_types: ['trade', 'derivative_ticker'], unavailable: {} }
      }
    })
  })

  test('replay of a Binance recording and a Deribit capture: one session with the rows of each, in exchange-time order, counted per type', { timeout: 60000 }, async () => {
    const lines = await headLines(SPOT_0808, 1500)
    const file = writeGz(tmpDir(), 'slice.gz', lines)
    const options = ['BTC-24SEP21-8000-P', 'ETH-30JUL21-2800-C']
    const deribitAlone = await collect(openReplay({ exchange: 'deribit', symbols: options, dataTypes: ['option_summary'], files: [DERIBIT_WS], log: memoryLog() }))
    const { code, lines: log, frames } = await runCli(['--source', 'replay', '--exchanges', 'binance,deribit', '--symbols', 'binance:btcusdt',
      '--symbols', `deribit:${options.join(',')}`, '--data-types', 'binance:trade,liquidation', '--data-types', 'deribit:option_summary',
      '--files', `binance:${file}`, '--files', `deribit:${DERIBIT_WS}`, '--ledger-interval-ms', '0'])
    assert.equal(code, 0, log.join('\n'))
    const start = frames[0].header
    assert.deepEqual(start.exchanges, ['binance', 'deribit'])
    assert.deepEqual(start.data_types, ['trade', 'option_summary'])
    assert.deepEqual(start.symbols, [['binance', 'BTCUSDT'], ['deribit', 'BTC-24SEP21-8000-P'], ['deribit', 'ETH-30JUL21-2800-C']])
    assert.deepEqual(Object.keys(start.streams), ['binance', 'deribit'])
    assert.deepEqual(start.streams.deribit, { data_types: ['option_summary'], unavailable: {} })
    assert.deepEqual(start.streams.binance.data_types, ['trade'])
    assert.match(start.streams.binance.unavailable.liquidation, /normalizeLiquidations: binance not supported/)
    assert.match(start.unavailable.liquidation, /^binance: tardis-dev has no liquidation mapper/)
    assert.ok(log.some((l) => l.startsWith('ingest: binance: liquidation not available for binance: ')), log.join('\n'))

    const rows = (type, exchange) => frames.filter((f) => f.header.type === type)
      .flatMap((f) => frameToRows(f).map((r) => ({ ...r, symbol: f.header.symbols[r.sym] })))
      .filter((r) => r.symbol[0] === exchange)
    const trades = expectedTrades(lines)
    assert.deepEqual(rows('trade', 'binance').map((r) => [r.id, r.price, r.timestamp]), trades.map((t) => [t.id, t.price, t.timestampMs * 1000]))
    const summaries = deribitAlone.filter((m) => m.type === 'option_summary')
    assert.deepEqual(rows('option_summary', 'deribit').map((r) => [r.symbol[1], r.mark_iv, r.timestamp]),
      summaries.map((m) => [m.symbol, m.markIV, m.timestamp.valueOf() * 1000]))
    // the Deribit capture (2021) is older than the Binance recording (2024): by exchange time it comes first
    const dataFrames = frames.filter((f) => f.header.n > 0).map((f) => f.header.type)
    assert.equal(dataFrames.lastIndexOf('option_summary') < dataFrames.indexOf('trade'), true, dataFrames.join(','))

    const end = frames.at(-1).header
    assert.equal(end.reason, 'replay_finished')
    assert.deepEqual(end.counts.rows, { option_summary: summaries.length, trade: trades.length })
    assert.deepEqual(end.counts.normalized, { option_summary: summaries.length, trade: trades.length })
    assert.deepEqual(end.counts.dropped, {})
    assert.equal(end.counts.raw.sent, end.counts.raw.received)
    assert.equal(end.counts.raw.sent, trades.length + summaries.length)
    assert.equal(end.counts.source_normalized, undefined)
  })
})
