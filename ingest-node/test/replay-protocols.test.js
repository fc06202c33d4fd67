// The replay server's per-exchange protocol modules, driven with the very subscribe messages tardis-dev's
// real-time feed classes build (mapToSubscribeMessages of the feed, filters of its own mappers) and with
// recorded frames of the cryptofeed captures.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { getRealTimeFeedFactory, normalizeTrades, normalizeBookChanges, normalizeOptionsSummary } from 'tardis-dev'
import { protocolFor } from '../src/replay/exchanges/index.js'
import { BITMEX_WS, COINBASE_WS, DERIBIT_WS, cryptofeedReceived } from './helpers.js'

/**
 * The subscribe messages tardis-dev sends for these normalizers (as text, as on the socket).
 * @param {string} exchange @param {string[]} symbols @param {Function[]} normalizers
 */
function tardisSubscribes (exchange, symbols, normalizers) {
  const filters = normalizers.flatMap((n) => n(exchange, new Date()).getFilters(symbols))
  const Feed = getRealTimeFeedFactory(exchange)
  const feed = new Feed(exchange, filters, 0, undefined)
  return feed.mapToSubscribeMessages(feed._filters).map((m) => JSON.stringify(m))
}

/** @param {string} exchange */
function session (exchange) {
  const p = protocolFor(exchange)
  return p.createSession(p.createRecordingState())
}

/** @param {any} data */
const rec = (data) => ({ file: 'x', line: 1, tsUs: 0, raw: JSON.stringify(data), data })

describe('replay protocols', () => {
  test('coinbase: tardis-dev subscribes level2_batch + matches; the recorded level2 frames serve level2_batch unchanged', () => {
    const subs = tardisSubscribes('coinbase', ['SKL-USD'], [normalizeTrades, normalizeBookChanges])
    assert.equal(subs.length, 1)
    assert.deepEqual(JSON.parse(subs[0]).channels.map((c) => c.name).sort(), ['level2_batch', 'matches'])
    const s = session('coinbase')
    const { replies, problem } = s.onClientMessage(subs[0])
    assert.equal(problem, undefined)
    assert.deepEqual(JSON.parse(replies[0]).type, 'subscriptions')
    const raw = cryptofeedReceived(COINBASE_WS)
    const pick = (type, product) => raw.find((m) => m.type === type && m.product_id === product)
    for (const [type, product, sent] of [['snapshot', 'SKL-USD', true], ['l2update', 'SKL-USD', true], ['match', 'SKL-USD', true], ['l2update', 'DASH-BTC', false], ['ticker', 'SKL-USD', false], ['subscriptions', undefined, false]]) {
      const r = rec(pick(type, product))
      assert.equal(s.route(r), sent ? r.raw : null, `${type} ${product}`)
    }
    assert.equal(session('coinbase').onClientMessage('{"type":"subscribe","channels":[{"name":"full","product_ids":["SKL-USD"]}]}').problem !== undefined, true, 'a channel the recording cannot serve is an error')
    // a second connection (after a drop) gets a snapshot of the book as recorded so far
    const shared = protocolFor('coinbase').createRecordingState()
    const first = protocolFor('coinbase').createSession(shared)
    first.onClientMessage(subs[0])
    first.route(rec(pick('snapshot', 'SKL-USD')))
    const second = protocolFor('coinbase').createSession(shared)
    const r2 = second.onClientMessage(subs[0]).replies
    assert.equal(r2.length, 2)
    assert.equal(JSON.parse(r2[1]).type, 'snapshot')
    assert.equal(JSON.parse(r2[1]).bids.length, pick('snapshot', 'SKL-USD').bids.length)
  })

  test('deribit: tardis-dev subscribes `.100ms`; recorded `.raw` notifications are sent under the subscribed name', () => {
    const symbols = ['ETH-30JUL21-2800-C']
    const subs = tardisSubscribes('deribit', symbols, [normalizeOptionsSummary, normalizeBookChanges])
    const channels = JSON.parse(subs[0]).params.channels
    assert.deepEqual(channels.sort(), ['book.ETH-30JUL21-2800-C.100ms', 'ticker.ETH-30JUL21-2800-C.100ms'])
    const s = session('deribit')
    assert.deepEqual(JSON.parse(s.onClientMessage('{"jsonrpc":"2.0","method":"public/set_heartbeat","id":0,"params":{"interval":10}}').replies[0]), { jsonrpc: '2.0', id: 0, result: 'ok' })
    assert.deepEqual(JSON.parse(s.onClientMessage(subs[0]).replies[0]).result.sort(), channels)
    const raw = cryptofeedReceived(DERIBIT_WS).filter((m) => m.method === 'subscription')
    const ticker = raw.find((m) => m.params.channel === 'ticker.ETH-30JUL21-2800-C.raw')
    const out = JSON.parse(s.route(rec(ticker)))
    assert.equal(out.params.channel, 'ticker.ETH-30JUL21-2800-C.100ms')
    assert.deepEqual(out.params.data, ticker.params.data, 'only the channel name changes')
    assert.equal(s.route(rec(raw.find((m) => m.params.channel === 'ticker.BTC-24SEP21-8000-P.raw'))), null, 'not subscribed')
  })

  test('bitmex: welcome, one ack per arg, only subscribed symbols\' rows', () => {
    const subs = tardisSubscribes('bitmex', ['XBTUSD', 'SOLUSDT'], [normalizeTrades, normalizeBookChanges])
    const args = subs.flatMap((m) => JSON.parse(m).args)
    assert.deepEqual([...args].sort(), ['orderBookL2:SOLUSDT', 'orderBookL2:XBTUSD', 'trade:SOLUSDT', 'trade:XBTUSD'])
    const s = session('bitmex')
    assert.match(JSON.parse(s.onOpen()[0]).info, /Welcome/)
    const acks = subs.flatMap((m) => s.onClientMessage(m).replies).map((r) => JSON.parse(r))
    assert.deepEqual(acks.map((a) => [a.success, a.subscribe]), args.map((a) => [true, a]))
    const raw = cryptofeedReceived(BITMEX_WS)
    const insert = raw.find((m) => m.table === 'orderBookL2' && m.action === 'insert' && m.data[0].symbol === 'SOLUSDT')
    assert.equal(s.route(rec(insert)), JSON.stringify(insert))
    assert.equal(s.route(rec(raw.find((m) => m.table === 'orderBookL2' && m.data[0]?.symbol === 'BCHUSD'))), null)
    assert.equal(s.route(rec(raw.find((m) => m.table === 'quote' && m.data[0]?.symbol === 'XBTUSD'))), null, 'quote not subscribed')
    const mixed = { table: 'trade', action: 'insert', data: [{ symbol: 'XBTUSD', price: 1 }, { symbol: 'BCHUSD', price: 2 }] }
    assert.deepEqual(JSON.parse(s.route(rec(mixed))).data, [{ symbol: 'XBTUSD', price: 1 }], 'rows of other symbols are left out')
  })
})

test('a client message that is not JSON gets the exchange\'s error reply and is reported', () => {
  // each exchange's documented answer to a malformed request
  const replies = {
    binance: { error: { code: 3, msg: 'Invalid JSON' } },
    bitmex: { status: 400, error: 'Unrecognized request. See the docs or send \'help\' for more details.', meta: {}, request: '{nope' },
    coinbase: { type: 'error', message: 'Failed to subscribe', reason: 'malformed JSON' },
    deribit: { jsonrpc: '2.0', error: { code: -32700, message: 'parse_error' } }
  }
  for (const exchange of ['binance', 'bitmex', 'coinbase', 'deribit']) {
    const protocol = protocolFor(exchange)
    const answer = protocol.createSession(protocol.createRecordingState()).onClientMessage('{nope')
    assert.equal(answer.problem, 'not JSON: {nope', exchange)
    assert.equal(answer.replies.length, 1, exchange)
    assert.deepEqual(JSON.parse(answer.replies[0]), replies[exchange], exchange)
  }
})
