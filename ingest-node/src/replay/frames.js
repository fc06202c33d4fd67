// Parsing a recorded frame: JSON.parse, except for the frames that make up most of a trades replay
// (Binance's spot and futures `<sym>@trade` frames), which one regular expression takes apart in about
// 40 % of JSON.parse's time (the replay's thread spent half its time in JSON.parse).
//
// A template gives exactly the object JSON.parse gives, or nothing: it matches only text with no
// whitespace, no escapes or control characters in its strings, and integers of at most 15 digits
// without a sign or leading zero (their value is Number's of the digits, as JSON.parse's), in the
// frame's own key order. Any other text (another frame, a field more or less, a float, a null, ...)
// is JSON.parse's, so an invalid frame still throws as JSON.parse throws.

/** A JSON string's content that needs no unescaping. */
const STR = '([^"\\\\\\x00-\\x1f]*)'
/** A JSON integer whose digits Number reads exactly. */
const INT = '(0|[1-9][0-9]{0,14})'
const BOOL = '(true|false)'

/**
 * @param {string} pattern the frame's text, `%s`/`%i`/`%b` where a string/integer/boolean is captured
 * @returns {RegExp}
 */
function template (pattern) {
  const literal = pattern.replace(/[{}]/g, '\\$&')
  return new RegExp(`^${literal.replaceAll('%s', STR).replaceAll('%i', INT).replaceAll('%b', BOOL)}$`)
}

/** Binance spot: `{"stream":"btcusdt@trade","data":{"e":"trade","E":..,"s":..,"t":..,"p":..,"q":..,"T":..,"m":..,"M":..}}` */
const BINANCE_SPOT_TRADE = template('{"stream":"%s","data":{"e":"trade","E":%i,"s":"%s","t":%i,"p":"%s","q":"%s","T":%i,"m":%b,"M":%b}}')
/** Binance USDⓈ-M and COIN-M futures: `{"stream":"btcusdt@trade","data":{"e":"trade","E":..,"T":..,"s":..,"t":..,"p":..,"q":..,"X":..,"m":..}}` */
const BINANCE_FUTURES_TRADE = template('{"stream":"%s","data":{"e":"trade","E":%i,"T":%i,"s":"%s","t":%i,"p":"%s","q":"%s","X":"%s","m":%b}}')

/**
 * The value of a frame that one of the templates matches (exactly JSON.parse's), else undefined.
 * @param {string} text
 * @returns {any}
 */
export function fromTemplate (text) {
  let g = BINANCE_SPOT_TRADE.exec(text)
  if (g !== null) {
    return { stream: g[1], data: { e: 'trade', E: Number(g[2]), s: g[3], t: Number(g[4]), p: g[5], q: g[6], T: Number(g[7]), m: g[8] === 'true', M: g[9] === 'true' } }
  }
  g = BINANCE_FUTURES_TRADE.exec(text)
  if (g !== null) {
    return { stream: g[1], data: { e: 'trade', E: Number(g[2]), T: Number(g[3]), s: g[4], t: Number(g[5]), p: g[6], q: g[7], X: g[8], m: g[9] === 'true' } }
  }
  return undefined
}

/**
 * The value of a recorded frame's JSON text, as JSON.parse(text) gives it (and throws as it throws).
 * @param {string} text
 * @returns {any}
 */
export const parseFrame = (text) => fromTemplate(text) ?? JSON.parse(text)
