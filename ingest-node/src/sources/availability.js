// Which of our data types tardis-dev can stream for an exchange, decided once at start by asking
// tardis-dev itself: its normalizer factories throw "<normalizer>: <exchange> not supported" for an
// exchange they have no mapper for (e.g. normalizeLiquidations('binance', ...): Binance spot has no
// liquidations), and getRealTimeFeedFactory throws for an exchange it has no real-time feed for.
// streamNormalized would otherwise retry such a stream forever, one disconnect after another.
//
// Liquidations come from two kinds of source in tardis-dev 13.35.3 (mappers/index.js liquidationsMappers):
// - derived from the TRADES channel, where the exchange flags liquidation trades: deribit (a trade's
//   `liquidation` field: "T" = the taker was liquidated, side = direction; "M" = the maker, side flipped),
//   cryptofacilities (trade type `liquidation`), dydx-v4 (v4_trades `liquidation`), ftx (trades `liquidation`);
// - a native liquidation feed: bitmex `liquidation`, binance-futures / binance-delivery `forceOrder`,
//   bybit `allLiquidation`, okex-swap / okex-futures `liquidation-orders`, bitfinex-derivatives
//   `liquidations`, huobi-dm / -swap / -linear-swap `liquidation_orders`.
// Either way `liquidation` is its own data type here; on a trades-derived exchange it costs no extra
// subscription (tardis-dev merges the identical `trades` filters). Both lists are in
// proto/exchanges.json, which the processor reads too; test/availability.test.js checks them against
// tardis-dev's mappers.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import {
  getRealTimeFeedFactory,
  normalizeTrades, normalizeBookChanges, normalizeDerivativeTickers, normalizeLiquidations, normalizeOptionsSummary
} from 'tardis-dev'
import { silentLog } from '../log.js'


export const EXCHANGES_JSON_PATH = fileURLToPath(new URL('../../../proto/exchanges.json', import.meta.url))

/**
 * The liquidation exchange lists of an exchanges.json file (exported for tests; the ingester uses
 * the two constants below).
 * @param {string} [path]
 * @returns {{fromTrades: string[], nativeFeed: string[]}}
 */
export function readLiquidationLists (path = EXCHANGES_JSON_PATH) {
  const liquidations = JSON.parse(readFileSync(path, 'utf8')).liquidations
  const list = (key) => {
    const v = liquidations?.[key]
    if (!Array.isArray(v) || !v.every((e) => typeof e === 'string')) throw new Error(`${path}: liquidations.${key} must be a list of exchange ids`)
    return Object.freeze([...v])
  }
  return { fromTrades: list('from_trades'), nativeFeed: list('native_feed') }
}

const LIQUIDATION_LISTS = readLiquidationLists()

/** Exchanges whose tardis-dev liquidations are derived from their trades channel (exchanges.json). */
export const LIQUIDATIONS_FROM_TRADES = LIQUIDATION_LISTS.fromTrades

/** Exchanges with a native liquidation channel in tardis-dev (exchanges.json). */
export const NATIVE_LIQUIDATION_FEEDS = LIQUIDATION_LISTS.nativeFeed

/**
 * data type (a wire.json frame type, the tardis message type of the same name) -> the tardis-dev
 * normalizer that feeds it (book_snapshot: computed from its book changes, tardis-stream.js). The one
 * place the ingester lists its data types: their rows are written from wire.json (convert.js).
 */
export const NORMALIZER_OF = {
  trade: normalizeTrades,
  book_snapshot: normalizeBookChanges,
  derivative_ticker: normalizeDerivativeTickers,
  liquidation: normalizeLiquidations,
  option_summary: normalizeOptionsSummary
}

/** Data types this ingester turns into frames (wire.json frame types). */
export const DATA_TYPES = Object.keys(NORMALIZER_OF)

/**
 * Why tardis-dev cannot stream `type` for `exchange` in real time, or null if it can.
 * @param {string} exchange
 * @param {string} type one of DATA_TYPES
 * @returns {string|null}
 */
export function unavailableReason (exchange, type) {
  const normalizer = Object.hasOwn(NORMALIZER_OF, type) ? NORMALIZER_OF[type] : undefined
  if (normalizer === undefined) throw new Error(`unknown data type ${JSON.stringify(type)} (known: ${DATA_TYPES.join(', ')})`)
  try {
    getRealTimeFeedFactory(exchange)
  } catch (e) {
    return `tardis-dev has no real-time feed for it (${e.message})`
  }
  try {
    normalizer(exchange, new Date())
  } catch (e) {
    return `tardis-dev has no ${type} mapper for it (${e.message})`
  }
  return null
}

/**
 * Splits the requested types into those tardis-dev can stream and those it cannot (with the reason).
 * Unknown type names throw (a usage error).
 * @param {string} exchange
 * @param {string[]} dataTypes
 * @returns {{available: string[], unavailable: {type: string, reason: string}[]}}
 */
export function checkDataTypes (exchange, dataTypes) {
  const available = []
  const unavailable = []
  for (const type of new Set(dataTypes)) {
    const reason = unavailableReason(exchange, type)
    if (reason === null) available.push(type)
    else unavailable.push({ type, reason })
  }
  return { available, unavailable }
}

/**
 * checkDataTypes, logging each unavailable type once: `<type> not available for <exchange>: <reason>`.
 * @param {{exchange: string, dataTypes: string[], log?: import('../log.js').Log, label?: string}} options
 * @returns {{available: string[], unavailable: {type: string, reason: string}[], error: string|null}}
 *   error: why nothing can be streamed (no requested type is available), else null
 */
export function selectDataTypes ({ exchange, dataTypes, log = silentLog, label = 'tardis' }) {
  const { available, unavailable } = checkDataTypes(exchange, dataTypes)
  for (const u of unavailable) log(`${u.type} not available for ${exchange}: ${u.reason}`)
  const error = available.length > 0 || dataTypes.length === 0
    ? null
    : `${label}: none of the requested data types is available for ${exchange}: ${unavailable.map((u) => `${u.type}: ${u.reason}`).join('; ')}`
  return { available, unavailable, error }
}
