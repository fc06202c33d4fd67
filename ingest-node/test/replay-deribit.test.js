// Deribit end to end on a capture of the real exchange (shared/data/cryptofeed-ws/DERIBIT.ws.1.0,
// cryptofeed format, recorded on `.raw` channels): replay server -> tardis-dev's own
// DeribitRealTimeDataFeed (WSS_URL_DERIBIT; it subscribes `.100ms`) -> streamNormalized -> batcher + wire
// encoder. Expected values are derived by the test from the raw recorded JSON; liquidations and the
// perpetual's derivative_ticker, which the capture does not hold, from a small recording written here
// in Deribit's documented notification format.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { openReplay } from '../src/sources/replay.js'
import { toUs } from '../src/convert.js'
import { memoryLog } from '../src/log.js'
import { DERIBIT_WS, cryptofeedReceived, collect, throughWire, rowsOfType, tmpDir, writeCryptofeed } from './helpers.js'

const OPTIONS = [
  'BTC-24SEP21-8000-P', 'BTC-30JUL21-24000-P', 'ETH-30JUL21-2800-C', 'BTC-31DEC21-34000-P', 'BTC-24SEP21-34000-P',
  'BTC-24JUN22-15000-C', 'BTC-31DEC21-300000-C', 'ETH-27AUG21-4000-P', 'BTC-25MAR22-30000-C', 'ETH-23JUL21-2300-C'
]
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC']

/**
 * What an option's ticker notification says, in tardis-dev's option_summary terms. From the instrument
 * name `<underlying>-<DMMMYY>-<strike>-<C|P>`: type, strike and expiry (Deribit options expire at 08:00
 * UTC). Deribit sends 0 for a missing best bid / ask (and its IV) and null for a never-traded last
 * price: those are missing values.
 * @param {any} d the notification's `params.data`
 */
function expectedSummary (d) {
  const [, date, strike, kind] = d.instrument_name.split('-')
  const [, day, mon, yy] = /^(\d{1,2})([A-Z]{3})(\d{2})$/.exec(date)
  const present = (v) => (v === null || v === undefined || v === 0 ? undefined : v)
  return {
    symbol: d.instrument_name,
    optionType: kind === 'P' ? 'put' : 'call',
    strikePrice: Number(strike),
    expirationUs: Date.UTC(2000 + Number(yy), MONTHS.indexOf(mon), Number(day), 8) * 1000,
    bestBidPrice: present(d.best_bid_price),
    bestBidAmount: present(d.best_bid_amount),
    bestBidIV: present(d.bid_iv),
    bestAskPrice: present(d.best_ask_price),
    bestAskAmount: present(d.best_ask_amount),
    bestAskIV: present(d.ask_iv),
    lastPrice: present(d.last_price),
    openInterest: d.open_interest,
    markPrice: d.mark_price,
    markIV: d.mark_iv,
    delta: d.greeks.delta,
    gamma: d.greeks.gamma,
    vega: d.greeks.vega,
    theta: d.greeks.theta,
    rho: d.greeks.rho,
    underlyingPrice: d.underlying_price,
    underlyingIndex: d.underlying_index,
    timestampUs: d.timestamp * 1000
  }
}

const FIELDS = ['optionType', 'strikePrice', 'bestBidPrice', 'bestBidAmount', 'bestBidIV', 'bestAskPrice', 'bestAskAmount', 'bestAskIV',
  'lastPrice', 'openInterest', 'markPrice', 'markIV', 'delta', 'gamma', 'vega', 'theta', 'rho', 'underlyingPrice', 'underlyingIndex']
/** option_summary field -> wire column */
const COLUMN = {
  optionType: 'option_type', strikePrice: 'strike_price', bestBidPrice: 'best_bid_price', bestBidAmount: 'best_bid_amount', bestBidIV: 'best_bid_iv',
  bestAskPrice: 'best_ask_price', bestAskAmount: 'best_ask_amount', bestAskIV: 'best_ask_iv', lastPrice: 'last_price', openInterest: 'open_interest',
  markPrice: 'mark_price', markIV: 'mark_iv', delta: 'delta', gamma: 'gamma', vega: 'vega', theta: 'theta', rho: 'rho',
  underlyingPrice: 'underlying_price', underlyingIndex: 'underlying_index'
}

describe('replay deribit (cryptofeed capture)', () => {
  test('option ticker -> option_summary, every field from the raw JSON, also through the wire', { timeout: 30000 }, async () => {
    const source = openReplay({ exchange: 'deribit', symbols: OPTIONS, dataTypes: ['option_summary'], files: [DERIBIT_WS], speed: 'max', replayPath: 'websocket', log: memoryLog() })
    const msgs = await collect(source)
    assert.deepEqual(msgs.at(-1), { type: 'end', reason: 'replay_finished', error: null })
    const tickers = cryptofeedReceived(DERIBIT_WS).filter((m) => m.method === 'subscription' && m.params.channel.startsWith('ticker.'))
    assert.equal(tickers.length, 89)
    assert.ok(tickers.every((m) => m.params.channel.endsWith('.raw')), 'recorded on .raw; tardis-dev subscribed .100ms')
    const want = tickers.map((m) => expectedSummary(m.params.data))
    assert.ok(want.some((e) => e.bestBidPrice === undefined), 'the capture has a ticker without a bid')
    const got = msgs.filter((m) => m.type === 'option_summary')
    assert.equal(got.length, want.length)
    got.forEach((s, i) => {
      const e = want[i]
      const where = `option_summary #${i} (${e.symbol})`
      assert.equal(s.exchange, 'deribit', where)
      assert.equal(s.symbol, e.symbol, where)
      for (const f of FIELDS) assert.equal(s[f], e[f], `${where}: ${f}`)
      assert.equal(toUs(s.expirationDate), e.expirationUs, `${where}: expirationDate`)
      assert.equal(toUs(s.timestamp), e.timestampUs, `${where}: timestamp`)
    })
    assert.equal(source.stats.server.clientProblems, 0, 'set_heartbeat and subscribe were understood')

    const rows = rowsOfType(await throughWire(msgs, { exchange: 'deribit', symbols: OPTIONS, dataTypes: ['option_summary'] }), 'option_summary')
    assert.equal(rows.length, want.length)
    rows.forEach((r, i) => {
      const e = want[i]
      const where = `wire row #${i} (${e.symbol})`
      assert.deepEqual(r.symbol, ['deribit', e.symbol], where)
      for (const f of FIELDS) assert.equal(r[COLUMN[f]], e[f] === undefined ? (f === 'underlyingIndex' ? '' : null) : e[f], `${where}: ${COLUMN[f]}`)
      assert.equal(r.expiration, e.expirationUs, `${where}: expiration`)
      assert.equal(r.timestamp, e.timestampUs, `${where}: timestamp`)
    })
  })

  test('liquidations derived from trades with a `liquidation` flag, and the perpetual\'s derivative_ticker', { timeout: 30000 }, async () => {
    // Deribit's documented notifications (https://docs.deribit.com/#trades-instrument_name-interval and
    // https://docs.deribit.com/#ticker-instrument_name-interval): a trade's optional `liquidation` is
    // "T" when the taker was liquidated, "M" when the maker was; `direction` is the taker's side.
    const trade = (id, direction, price, amount, liquidation, ts) => ({
      trade_seq: 1000 + id, trade_id: `ETH-${id}`, timestamp: ts, tick_direction: 0, price, mark_price: price, instrument_name: 'BTC-PERPETUAL',
      index_price: price, direction, amount, ...(liquidation === undefined ? {} : { liquidation })
    })
    const trades = (data) => ({ jsonrpc: '2.0', method: 'subscription', params: { channel: 'trades.BTC-PERPETUAL.raw', data } })
    const ticker = (data) => ({ jsonrpc: '2.0', method: 'subscription', params: { channel: 'ticker.BTC-PERPETUAL.raw', data: { instrument_name: 'BTC-PERPETUAL', state: 'open', ...data } } })
    const recorded = [
      ticker({ timestamp: 1626993723632, last_price: 32170.5, index_price: 32168.21, mark_price: 32169.9, open_interest: 1004650, current_funding: 0.00001, funding_8h: 0.00002, best_bid_price: 32170, best_ask_price: 32170.5 }),
      trades([trade(1, 'buy', 32170.5, 1000, undefined, 1626993724000), trade(2, 'sell', 32150, 2500, 'T', 1626993724001)]),
      trades([trade(3, 'buy', 32190, 700, 'M', 1626993725010)]),
      ticker({ timestamp: 1626993725632, last_price: 32190, index_price: 32180.02, mark_price: 32185.4, open_interest: 1002650, current_funding: 0.000012, funding_8h: 0.00002, best_bid_price: 32189.5, best_ask_price: 32190 }),
      trades([trade(4, 'sell', 32185, 10, undefined, 1626993726000)])
    ]
    const file = writeCryptofeed(tmpDir(), 'deribit-liquidations.txt', 'wss://www.deribit.com/ws/api/v2', recorded, 1626993723.7)
    const source = openReplay({ exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['trade', 'liquidation', 'derivative_ticker'], files: [file], speed: 'max', log: memoryLog() })
    const msgs = await collect(source)
    assert.equal(msgs.at(-1).reason, 'replay_finished')
    const raw = recorded.filter((m) => m.params.channel.startsWith('trades.')).flatMap((m) => m.params.data)
    assert.equal(msgs.filter((m) => m.type === 'trade').length, raw.length, 'every trade is also a trade')
    const wantLiq = raw.filter((t) => t.liquidation !== undefined).map((t) => ({
      id: t.trade_id, price: t.price, amount: t.amount, timestampUs: t.timestamp * 1000,
      side: t.liquidation === 'T' ? t.direction : (t.direction === 'buy' ? 'sell' : 'buy') // the liquidated party's order side
    }))
    const liqs = msgs.filter((m) => m.type === 'liquidation')
    assert.deepEqual(liqs.map((l) => ({ id: l.id, price: l.price, amount: l.amount, timestampUs: toUs(l.timestamp), side: l.side })), wantLiq)
    assert.deepEqual(wantLiq.map((l) => l.side), ['sell', 'sell'], 'T keeps the taker direction, M flips it')

    // the perpetual's ticker (no greeks) is a derivative_ticker; current_funding is the funding rate
    const wantTickers = recorded.filter((m) => m.params.channel.startsWith('ticker.')).map((m) => m.params.data)
    const tickers = msgs.filter((m) => m.type === 'derivative_ticker')
    assert.deepEqual(tickers.map((t) => [t.symbol, t.lastPrice, t.indexPrice, t.markPrice, t.openInterest, t.fundingRate, toUs(t.timestamp)]),
      wantTickers.map((d) => ['BTC-PERPETUAL', d.last_price, d.index_price, d.mark_price, d.open_interest, d.current_funding, d.timestamp * 1000]))

    const frames = await throughWire(msgs, { exchange: 'deribit', symbols: ['BTC-PERPETUAL'], dataTypes: ['trade', 'liquidation', 'derivative_ticker'] })
    assert.deepEqual(rowsOfType(frames, 'liquidation').map((r) => [r.symbol[1], r.id, r.price, r.amount, r.side, r.timestamp]),
      wantLiq.map((l) => ['BTC-PERPETUAL', l.id, l.price, l.amount, l.side, l.timestampUs]))
    assert.deepEqual(rowsOfType(frames, 'derivative_ticker').map((r) => [r.last_price, r.index_price, r.mark_price, r.open_interest, r.funding_rate, r.funding_timestamp]),
      wantTickers.map((d) => [d.last_price, d.index_price, d.mark_price, d.open_interest, d.current_funding, null]))
  })
})
