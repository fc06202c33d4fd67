// Issue 19 item 1: the direct replay path (recorded frames straight into tardis-dev's mappers) against
// the WebSocket path (replay server -> tardis-dev's real-time client), on every recording of
// shared/data the replay can use: the same normalized messages in the same order (every field but
// localTimestamp, which is the recorded receive time on the direct path and the arrival time on the
// WebSocket path), the same ledger counts, and the same wire rows (all columns but local_timestamp).
// Counts that say the comparison is not empty are worked out from the raw files by plain scans here.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { setImmediate as turn } from 'node:timers/promises'
import { openReplay, replayPathOf } from '../src/sources/replay.js'
import { openSource } from '../src/sources/index.js'
import { toUs } from '../src/convert.js'
import { memoryLog } from '../src/log.js'
import { SHARED_DATA, BITMEX_WS, COINBASE_WS, DERIBIT_WS, collect, throughWire, cryptofeedReceived, expectedTrades, assertTrade, tmpDir, writeGz } from './helpers.js'

const BWS = `${SHARED_DATA}/binance-ws`
const SPOT_0808 = `${BWS}/spot_btcusdt_20240808.gz`
const SPOT_0809 = `${BWS}/spot_btcusdt_20240809.gz`
const USDM = `${BWS}/usdm_btcusdt_20240808.gz`
const CM = `${BWS}/cm_btcusd_perp_20240808.gz`
const BINANCE_FUTURES_WS = `${SHARED_DATA}/cryptofeed-ws/BINANCE_FUTURES.ws.1.0`

const BITMEX_SYMBOLS = ['XRPU21', 'UNIUSDT', 'XBTUSD', 'ADAUSDT', 'SOLUSDT', 'TRXU21', 'EOSUSDT', 'TRXUSDT', 'BCHUSD', 'MATICUSDT']
const COINBASE_PRODUCTS = ['SKL-USD', 'SKL-BTC', 'BAND-GBP', 'NMR-EUR', 'BAND-BTC', 'YFI-BTC', 'DASH-BTC', 'NU-GBP', 'CRV-EUR', 'SKL-GBP']
const DERIBIT_OPTIONS = [
  'BTC-24JUN22-15000-C', 'BTC-24SEP21-34000-P', 'BTC-24SEP21-8000-P', 'BTC-25MAR22-30000-C', 'BTC-30JUL21-24000-P',
  'BTC-31DEC21-300000-C', 'BTC-31DEC21-34000-P', 'ETH-23JUL21-2300-C', 'ETH-27AUG21-4000-P', 'ETH-30JUL21-2800-C'
]
const BOOK_TRADE = ['trade', 'book_snapshot']
const ALL_TYPES = ['trade', 'book_snapshot', 'derivative_ticker', 'liquidation', 'option_summary']

/** Lines of a recording (gzip or plain), read here without the ingester's reader. @param {string} file */
const rawLines = (file) => {
  const buf = readFileSync(file)
  const text = buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf).toString('utf8') : buf.toString('utf8')
  return text.split('\n').filter((l) => l !== '')
}
/** @param {string[]} files @param {string} needle */
const linesWith = (files, needle) => files.flatMap(rawLines).filter((l) => l.includes(needle)).length

/** µs of a Date (with tardis' μs), or of a number (wire rows are µs already). @param {any} t */
const us = (t) => (t instanceof Date ? toUs(t) : t)

/**
 * `direct` equals `websocket` in every field but the local receive time. Where tardis-dev had no
 * exchange time and took the local one (a BitMEX partial, a Coinbase snapshot: `timestamp` equal to
 * the local time on the WebSocket path), the direct one must be its own local (recorded) time too.
 * @param {any} direct @param {any} websocket @param {string} localKey @param {string} what
 * @returns {number} 1 when the timestamp was the local time, else 0
 */
function assertSameRecord (direct, websocket, localKey, what) {
  const { [localKey]: dl, timestamp: dt, ...d } = direct
  const { [localKey]: wl, timestamp: wt, ...w } = websocket
  assert.deepEqual(d, w, what)
  if (wt === undefined && dt === undefined) return 0
  if (us(wt) === us(wl)) {
    assert.equal(us(dt), us(dl), `${what}: the timestamp tardis-dev took from the local time is the direct path's (recorded) local time`)
    return 1
  }
  assert.equal(us(dt), us(wt), `${what}: timestamp`)
  assert.deepEqual(dt, wt, `${what}: timestamp`)
  return 0
}

/** A decoded wire header without the sender's monotonic clock readings. */
const headerContent = ({ recv_mono_us, sent_mono_us, ...h }) => h

/**
 * Both paths on the same options.
 * @param {any} o openReplay options (speed max)
 */
async function bothPaths (o) {
  const out = {}
  for (const replayPath of ['websocket', 'direct']) {
    const log = memoryLog()
    const source = openReplay({ ...o, speed: 'max', replayPath, log })
    const msgs = await collect(source)
    out[replayPath] = { source, msgs, log, counts: source.ledgerCounts() }
  }
  return out
}

/**
 * The two paths gave the same messages in the same order (all but localTimestamp), the same ledger
 * counts and the same wire frames (all but local_timestamp); returns the direct path's messages.
 * @param {any} o openReplay options
 * @param {any} [t] the test context: its diagnostics get the counts
 */
async function assertSame (o, t) {
  const { websocket: ws, direct } = await bothPaths(o)
  assert.ok(direct.log.lines.some((l) => l.startsWith('replay path: direct')), direct.log.lines.join('\n'))
  assert.ok(ws.log.lines.some((l) => l.startsWith('replay path: websocket')), ws.log.lines.join('\n'))
  assert.deepEqual(direct.source.dataTypes, ws.source.dataTypes, 'data types streamed')
  assert.deepEqual(direct.source.unavailable, ws.source.unavailable, 'data types left out, and why')
  assert.equal(direct.msgs.length, ws.msgs.length, 'as many messages')
  let localTimes = 0
  direct.msgs.forEach((m, i) => { localTimes += assertSameRecord(m, ws.msgs[i], 'localTimestamp', `message #${i} (${m.type})`) })
  assert.deepEqual(direct.counts, ws.counts, 'ledger counts (direct: sent = received = frames fed to the mappers)')
  assert.equal(direct.counts.raw.sent, direct.counts.raw.received)
  assert.equal(direct.counts.raw.sent + direct.counts.raw.skipped, direct.counts.raw.read)
  assert.equal(direct.source.stats.direct.clientProblems, 0, 'tardis-dev\'s subscribe messages understood')
  assert.equal(direct.source.stats.direct.mapperErrors, 0)
  const data = direct.msgs.filter((m) => m.type !== 'end')
  // direct: local time = the recorded receive time, never the time of the run
  for (const m of data) assert.ok(m.localTimestamp instanceof Date && m.localTimestamp.valueOf() < Date.UTC(2025, 0, 1), `${m.type} local time ${m.localTimestamp?.toISOString?.()} is a recorded one`)
  if (data.length > 0) {
    const streams = { exchange: o.exchange, symbols: o.symbols, dataTypes: direct.source.dataTypes }
    const [fw, fd] = [await throughWire(ws.msgs, streams), await throughWire(direct.msgs, streams)]
    assert.equal(fd.length, fw.length, 'as many wire frames')
    fd.forEach((f, i) => {
      assert.deepEqual(headerContent(f.header), headerContent(fw[i].header), `wire frame #${i} (${f.header.type}) header`)
      assert.equal(f.rows.length, fw[i].rows.length)
      f.rows.forEach((r, k) => assertSameRecord(r, fw[i].rows[k], 'local_timestamp', `wire frame #${i} (${f.header.type}) row ${k}`))
    })
  }
  t?.diagnostic(`${o.exchange} ${o.files.map((f) => f.split('/').at(-1)).join('+')}: ${JSON.stringify(countTypes(direct.msgs))}, ledger ${JSON.stringify(direct.counts.raw)}, ${localTimes} message(s) whose timestamp is the local time`)
  return { ...direct, localTimes }
}

/** @param {any[]} msgs */
const countTypes = (msgs) => msgs.reduce((c, m) => ({ ...c, [m.type]: (c[m.type] ?? 0) + 1 }), {})

describe('direct replay = WebSocket replay, binance-ws recordings', () => {
  test('spot 0808 + 0809 (trade, book_snapshot): every @trade line once, book snapshots equal', { timeout: 120000 }, async (t) => {
    const files = [SPOT_0808, SPOT_0809]
    const direct = await assertSame({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: BOOK_TRADE, files }, t)
    const c = countTypes(direct.msgs)
    assert.equal(c.trade, linesWith(files, '"stream":"btcusdt@trade"'), 'trades = @trade lines of the raw files')
    assert.equal(c.trade, 19904, 'the README\'s 9,757 + 10,147')
    const exp = expectedTrades(files.flatMap(rawLines))
    direct.msgs.filter((m) => m.type === 'trade').forEach((m, i) => assertTrade(m, exp[i], 'binance', `trade #${i}`))
    assert.ok(c.book_snapshot > 1000, `book snapshots (${c.book_snapshot})`)
    assert.deepEqual(direct.msgs.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    assert.equal(direct.counts.raw.read, files.flatMap(rawLines).length, 'every line read')
    // the trades' local times are the recorded `<ns>` of their lines (µs)
    const tradeNs = files.flatMap(rawLines).filter((l) => l.includes('"stream":"btcusdt@trade"')).map((l) => l.slice(0, l.indexOf(' ')))
    direct.msgs.filter((m) => m.type === 'trade').forEach((m, i) => assert.equal(toUs(m.localTimestamp), Number(tradeNs[i].slice(0, -3)), `trade #${i} local time`))
  })

  test('spot 0808 alone and 0809 alone (0809 has no depth snapshot: trade only on both paths)', { timeout: 120000 }, async (t) => {
    for (const file of [SPOT_0808, SPOT_0809]) {
      const direct = await assertSame({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: BOOK_TRADE, files: [file] }, t)
      assert.equal(countTypes(direct.msgs).trade, linesWith([file], '"stream":"btcusdt@trade"'), file)
    }
  })

  test('usdm (binance-futures) and coin-m (binance-delivery), trade + book_snapshot', { timeout: 120000 }, async (t) => {
    const usdm = await assertSame({ exchange: 'binance-futures', symbols: ['btcusdt'], dataTypes: BOOK_TRADE, files: [USDM] }, t)
    assert.equal(countTypes(usdm.msgs).trade, linesWith([USDM], '"stream":"btcusdt@trade"'))
    assert.equal(countTypes(usdm.msgs).trade, 21313)
    const cm = await assertSame({ exchange: 'binance-delivery', symbols: ['btcusd_perp'], dataTypes: BOOK_TRADE, files: [CM] }, t)
    assert.equal(countTypes(cm.msgs).trade, linesWith([CM], '"stream":"btcusd_perp@trade"'))
    assert.equal(countTypes(cm.msgs).trade, 2286)
  })
})

describe('direct replay = WebSocket replay, malformed lines', () => {
  test('bad lines are counted (by reason) and skipped the same way; the good lines around them come out', { timeout: 60000 }, async (t) => {
    const good = rawLines(SPOT_0809).slice(0, 3000)
    const bad = ['no-separator-at-all', '1723161600000000000 {"stream":', '1723161600000000000 [1,2]', 'xyz {"a":1}']
    const lines = [...good.slice(0, 1000), bad[0], ...good.slice(1000, 2000), bad[1], bad[2], '', ...good.slice(2000), bad[3]]
    const file = writeGz(tmpDir(), 'with-bad-lines.gz', lines)
    const { websocket: ws, direct } = await bothPaths({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'], files: [file] })
    assert.deepEqual(direct.source.stats.recording, ws.source.stats.recording)
    assert.equal(direct.source.stats.recording.bad, 4)
    assert.deepEqual(direct.source.stats.recording.badReasons, { no_separator: 1, invalid_json: 1, not_an_object: 1, bad_timestamp: 1 })
    assert.deepEqual(direct.counts, ws.counts)
    assert.equal(direct.counts.raw.read, good.length)
    assert.equal(countTypes(direct.msgs).trade, good.filter((l) => l.includes('"stream":"btcusdt@trade"')).length)
    assert.ok(direct.log.lines.some((l) => l.includes('with-bad-lines.gz:1001: malformed line skipped')), direct.log.lines.join('\n'))
    t.diagnostic(JSON.stringify(direct.source.stats.recording))
  })
})

describe('direct replay = WebSocket replay, cryptofeed captures, every data type the exchange supports', () => {
  test('BitMEX', { timeout: 120000 }, async (t) => {
    const direct = await assertSame({ exchange: 'bitmex', symbols: BITMEX_SYMBOLS, dataTypes: ALL_TYPES, bookDepth: 5, bookIntervalMs: 0, files: [BITMEX_WS] }, t)
    const trades = cryptofeedReceived(BITMEX_WS).filter((m) => m.table === 'trade' && m.action === 'insert').flatMap((m) => m.data)
    assert.equal(countTypes(direct.msgs).trade, trades.length)
    assert.equal(trades.length, 17, 'the README\'s 27 trade rows less the 10 partials (recent-trade history, not new trades)')
  })

  test('Coinbase', { timeout: 120000 }, async (t) => {
    const direct = await assertSame({ exchange: 'coinbase', symbols: COINBASE_PRODUCTS, dataTypes: ALL_TYPES, bookDepth: 5, bookIntervalMs: 0, files: [COINBASE_WS] }, t)
    const matches = cryptofeedReceived(COINBASE_WS).filter((m) => m.type === 'match' && COINBASE_PRODUCTS.includes(m.product_id))
    assert.equal(countTypes(direct.msgs).trade, matches.length)
    assert.ok(countTypes(direct.msgs).book_snapshot > 0)
  })

  test('Deribit', { timeout: 120000 }, async (t) => {
    const direct = await assertSame({ exchange: 'deribit', symbols: DERIBIT_OPTIONS, dataTypes: ALL_TYPES, bookDepth: 5, bookIntervalMs: 0, files: [DERIBIT_WS] }, t)
    const tickers = cryptofeedReceived(DERIBIT_WS).filter((m) => m.params?.channel?.startsWith('ticker.'))
    assert.equal(countTypes(direct.msgs).option_summary, tickers.length, 'one option_summary per recorded ticker')
    assert.equal(tickers.length, 89)
  })

  test('Binance futures capture (aggTrade and depth without a snapshot: nothing tardis-dev subscribes to): the same error end on both paths', { timeout: 120000 }, async (t) => {
    // derivative_ticker left out: on the WebSocket path tardis-dev's openInterest REST poller goes on
    // polling the closed replay server after the end and keeps the process alive (requests-node.md)
    const direct = await assertSame({ exchange: 'binance-futures', symbols: ['sushiusdt', 'akrousdt', 'keepusdt', 'ctkusdt'], dataTypes: ['trade', 'book_snapshot', 'liquidation'], files: [BINANCE_FUTURES_WS] }, t)
    assert.equal(direct.msgs.length, 1)
    assert.equal(direct.msgs[0].reason, 'error')
    assert.match(direct.msgs[0].error, /none of a subscribed stream/)
    assert.equal(linesWith([BINANCE_FUTURES_WS], '@trade"'), 0, 'the capture has aggTrade, not trade')
  })
})

describe('direct replay: path choice, hold, merge', () => {
  test('auto = direct at speed max without cut-after or recording, websocket otherwise; an unknown path is an error', () => {
    assert.equal(replayPathOf({ speed: 'max', cutAfter: 0 }), 'direct')
    assert.equal(replayPathOf({ speed: 'max', cutAfter: 10 }), 'websocket')
    assert.equal(replayPathOf({ speed: 10, cutAfter: 0 }), 'websocket')
    assert.equal(replayPathOf({ replayPath: 'websocket', speed: 'max' }), 'websocket')
    assert.equal(replayPathOf({ replayPath: 'direct', speed: 5 }), 'direct')
    assert.throws(() => replayPathOf({ replayPath: 'socket' }), /replayPath must be one of auto, direct, websocket/)
    // recording keeps what tardis-dev's real-time feed receives: only the websocket path has one
    assert.equal(replayPathOf({ speed: 'max', recording: true }), 'websocket')
    assert.throws(() => replayPathOf({ replayPath: 'direct', recording: true }), /direct cannot record/)
  })

  test('hold(true): no further recorded message is read until hold(false)', { timeout: 60000 }, async () => {
    const source = openReplay({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'], files: [SPOT_0809], speed: 'max', log: memoryLog() })
    const it = source[Symbol.asyncIterator]()
    const trades = (batch) => [batch].flat().filter((m) => m.type === 'trade').length
    let taken = 0
    while (taken < 100) { // the direct path yields a batch (array) of messages per piece read
      const { value } = await it.next()
      assert.ok([value].flat().every((m) => m.type === 'trade'))
      taken += trades(value)
    }
    source.hold(true)
    let settled = false
    const pending = it.next().then((r) => { settled = true; return r })
    for (let i = 0; i < 20; i++) await turn()
    const read = source.ledgerCounts().raw.read
    for (let i = 0; i < 20; i++) await turn()
    assert.equal(source.ledgerCounts().raw.read, read, 'nothing read while held')
    assert.ok(!settled, 'nothing yielded while held')
    source.hold(false)
    const next = await pending
    assert.ok(settled)
    const rest = await collect({ [Symbol.asyncIterator]: () => it })
    assert.equal(taken + trades(next.value) + trades(rest), linesWith([SPOT_0809], '"stream":"btcusdt@trade"'))
    assert.deepEqual(rest.at(-1), { type: 'end', reason: 'replay_finished', error: null })
  })

  test('the event loop turns during a direct replay (timers, metrics and signals are served)', { timeout: 60000 }, async () => {
    let ticks = 0
    let during = 0
    const timer = setInterval(() => { ticks++ }, 1)
    const source = openReplay({ exchange: 'binance', symbols: ['btcusdt'], dataTypes: ['trade'], files: [SPOT_0808, SPOT_0809], speed: 'max', log: memoryLog() })
    let first = null
    for await (const m of source) {
      if (first === null) first = ticks
      if (m.type === 'end') during = ticks - first
    }
    clearInterval(timer)
    assert.equal(source.ledgerCounts().raw.read, [SPOT_0808, SPOT_0809].flatMap(rawLines).length)
    assert.ok(during >= 2, `a 1 ms timer fired ${during} time(s) while 99,574 lines were replayed`)
  })

  test('Binance and Deribit merged by exchange time: the same merged messages on both paths', { timeout: 120000 }, async (t) => {
    // (not BitMEX: its book snapshots take their exchange time from the local time, which differs by
    // definition between the paths, and so does their place in an exchange-time merge)
    const streams = [
      { exchange: 'binance', symbols: ['btcusdt'], dataTypes: BOOK_TRADE, files: [SPOT_0808] },
      { exchange: 'deribit', symbols: DERIBIT_OPTIONS, dataTypes: ['option_summary', 'book_snapshot'], files: [DERIBIT_WS] }
    ]
    const run = (replayPath) => collect(openSource({ source: 'replay', streams, speed: 'max', replayPath, highWater: 500, log: memoryLog() }))
    const [ws, direct] = [await run('websocket'), await run('direct')]
    assert.equal(direct.length, ws.length)
    direct.forEach((m, i) => assertSameRecord(m, ws[i], 'localTimestamp', `merged message #${i}`))
    assert.deepEqual(direct.at(-1), { type: 'end', reason: 'replay_finished', error: null })
  })
})
