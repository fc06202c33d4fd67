// Per-exchange protocol bits of the replay server, one small module per exchange family: the URL path,
// the answers to the subscribe (and heartbeat) messages tardis-dev's real-time feed sends, which
// recorded messages go to a client (subscribed channel and symbol only), and the REST calls tardis-dev
// makes. To add an exchange: write a module with the same exports and list it here.
import * as binance from './binance.js'
import * as bitmex from './bitmex.js'
import * as coinbase from './coinbase.js'
import * as deribit from './deribit.js'

/**
 * @typedef {object} ProtocolSession one client connection
 * @property {boolean} subscribed whether the client subscribed to anything yet
 * @property {() => string[]} [onOpen] frames sent as soon as the client connects (a greeting)
 * @property {(text: string) => {replies: string[], problem?: string}} onClientMessage
 * @property {(rec: import('../recording.js').RecordedMessage) => string|null} route text to send, or null (not subscribed / not for clients)
 *
 * @typedef {object} ExchangeProtocol
 * @property {string[]} exchanges tardis exchange ids it serves
 * @property {string} path URL path of the WebSocket endpoint
 * @property {(inventory?: any) => any} createRecordingState inventory: what scanRecording found, if it ran
 * @property {(shared: any) => ProtocolSession} createSession
 * @property {(endpoint: string, query: URLSearchParams, shared: any) => {status: number, headers?: Record<string, string>, body: string, pending?: boolean}} [rest]
 *   answers the exchange REST calls tardis-dev makes (optional); `pending`: the recording has the answer
 *   further on, the server asks again as the replay goes on (for a bounded time)
 * @property {string[]} [scannedTypes] data types that need scanRecording before a replay
 * @property {(lines: AsyncIterable<{file: string, line: number, text: string}>, request: {symbols: string[], dataTypes: string[]}) => Promise<{unavailable: {type: string, reason: string}[], inventory: any}>} [scanRecording]
 *   what the recording holds that tardis-dev's feed needs besides the subscribed streams (Binance: a
 *   depth snapshot per symbol for book data); `unavailable`: data types it cannot feed, and why
 * @property {(text: string) => boolean} [scanLine] whether scanRecording needs to see a line (a cheap test;
 *   the others are not handed to it: a trades-only recording is scanned at the speed of reading it)
 */

/** @type {ExchangeProtocol[]} */
const PROTOCOLS = [binance, bitmex, coinbase, deribit]

/**
 * @param {string} exchange
 * @returns {ExchangeProtocol}
 */
export function protocolFor (exchange) {
  const p = PROTOCOLS.find((x) => x.exchanges.includes(exchange))
  if (p === undefined) {
    throw new Error(`replay: no replay protocol for exchange ${JSON.stringify(exchange)} (supported: ${PROTOCOLS.flatMap((x) => x.exchanges).join(', ')})`)
  }
  return p
}
