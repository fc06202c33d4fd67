// Plain stderr lines prefixed "ingest:". Secrets are redacted from anything logged as an object, and
// from `name=value` pairs in lines (API keys, tokens, CURVE keys: MDTH_CURVE_*=..., curveSecretKey=...).

const SECRET_KEY_RE = /(api[-_]?key|secret|token|password|passphrase|authorization|curve|(server|public|private|client)[-_]?key)/i
const SECRET_PAIR_RE = /(api[-_]?key|token|secret)=([^&\s]+)/gi // URL query parameters
const CURVE_PAIR_RE = /(MDTH_CURVE_\w+|curve\w*key)=(\S+)/gi // Z85 keys may hold '&'

/**
 * Deep copy with secret-looking keys replaced by "***".
 * @param {any} value
 * @returns {any}
 */
export function redact (value) {
  if (Array.isArray(value)) return value.map(redact)
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const out = {}
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY_RE.test(k) ? '***' : redact(v)
    return out
  }
  if (typeof value === 'string') return value.replace(CURVE_PAIR_RE, '$1=***').replace(SECRET_PAIR_RE, '$1=***')
  return value
}

/**
 * @typedef {(line: string) => void} Log
 */

/**
 * @param {NodeJS.WritableStream} [stream]
 * @returns {Log}
 */
export function createLog (stream = process.stderr) {
  return (line) => { stream.write(`ingest: ${redact(line)}\n`) }
}

/** A log that keeps lines in memory (tests). @returns {Log & {lines: string[]}} */
export function memoryLog () {
  const lines = []
  const log = (line) => { lines.push(redact(line)) }
  log.lines = lines
  return log
}

/** A log that drops everything. @type {Log} */
export const silentLog = () => {}

/** @returns {number} CLOCK_MONOTONIC microseconds (the clock Python's time.monotonic_ns() reads). */
export const monoUs = () => Number(process.hrtime.bigint() / 1000n)
