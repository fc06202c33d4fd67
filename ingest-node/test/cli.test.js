// The CLI as the processor sees it: a PULL in this process, the ingester in a child process.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { Pull } from 'zeromq'
import { decodeFrame } from '../src/wire/index.js'
import { INGEST_DIR, SPOT_0808, tmpDir, headLines, writeGz, expectedTrades, closedPort } from './helpers.js'

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
