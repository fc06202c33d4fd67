// Stderr lines: `ingest: <text>` (format text, the default), or with `--log-format json` /
// $MDTH_LOG_FORMAT=json one JSON object per line, {"ts", "level", "logger": "ingest", "msg"} (ts: UTC,
// ISO 8601 with microseconds, as the processor's JSON log lines). Secrets are redacted from anything
// logged as an object, and from `name=value` pairs in lines (API keys, tokens, CURVE keys:
// MDTH_CURVE_*=..., curveSecretKey=...), in either format.

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

/** @typedef {'text'|'json'} LogFormat */

export const LOG_FORMAT_ENV = 'MDTH_LOG_FORMAT'

/**
 * The log format from `--log-format` (when given) or $MDTH_LOG_FORMAT (default text).
 * @param {string|undefined} flag
 * @param {Record<string, string|undefined>} [env]
 * @returns {LogFormat}
 */
export function logFormatOf (flag, env = process.env) {
  const v = (flag ?? env[LOG_FORMAT_ENV] ?? 'text').trim().toLowerCase()
  if (v === 'text' || v === 'json' || v === '') return v === 'json' ? 'json' : 'text'
  throw new Error(`--log-format must be text or json, got ${JSON.stringify(flag ?? env[LOG_FORMAT_ENV])}${flag === undefined ? ` (from $${LOG_FORMAT_ENV})` : ''}`)
}

/**
 * UTC ISO 8601 with microseconds, e.g. 2026-12-06T13:36:35.123456Z.
 * @param {number} [epochUs] µs since the epoch (default now)
 */
export function isoMicros (epochUs = Math.floor((performance.timeOrigin + performance.now()) * 1000)) {
  const ms = Math.floor(epochUs / 1000)
  return `${new Date(ms).toISOString().slice(0, 19)}.${String(epochUs % 1_000_000).padStart(6, '0')}Z`
}

/**
 * One log line in `format`.
 * @param {string} line already redacted
 * @param {LogFormat} format
 * @param {string} [level]
 */
export function formatLine (line, format, level = 'INFO') {
  if (format === 'json') return JSON.stringify({ ts: isoMicros(), level, logger: 'ingest', msg: line }) + '\n'
  return `ingest: ${line}\n`
}

/**
 * @param {NodeJS.WritableStream} [stream]
 * @param {{format?: LogFormat}} [options] default: $MDTH_LOG_FORMAT, else text
 * @returns {Log & {format: LogFormat, error: Log}}
 */
export function createLog (stream = process.stderr, { format = envFormat() } = {}) {
  const log = /** @type {Log & {format: LogFormat, error: Log}} */ ((line) => { stream.write(formatLine(redact(String(line)), format)) })
  log.format = format
  log.error = (line) => { stream.write(formatLine(redact(String(line)), format, 'ERROR')) }
  return log
}

/** $MDTH_LOG_FORMAT when it is a known format, else text (a bad value is reported by the CLI). */
function envFormat () {
  const v = (process.env[LOG_FORMAT_ENV] ?? '').trim().toLowerCase()
  return v === 'json' ? 'json' : 'text'
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
