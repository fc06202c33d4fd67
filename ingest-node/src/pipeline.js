// source -> batcher -> sender. Sends `start` first and `end` last; pulling from the source waits
// whenever a send waits (back-pressure from the processor reaches the source).
import { readFileSync } from 'node:fs'
import { silentLog } from './log.js'

export const INGESTER_VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version

const ABORTED = Symbol('aborted')

/**
 * The ledger counts a `ledger` or `end` frame carries (proto/README.md "Ledger counts"): the batcher's
 * counts plus the source's `raw` and `internal` ({} when the source has no ledgerCounts()), and the
 * source's own `normalized` as `source_normalized` when it differs from the batcher's.
 * @typedef {import('./batcher.js').BatcherCounts & {raw: Record<string, number>, internal: Record<string, number>, source_normalized?: Record<string, number>}} LedgerCounts
 */

/**
 * @typedef {object} PipelineResult
 * @property {'replay_finished'|'source_closed'|'error'} reason
 * @property {string|null} error
 * @property {LedgerCounts} counts what the end frame carries
 * @property {boolean} endDelivered whether the processor received the end frame (it hung up after it)
 */

/** Equal as counts: the same non-zero entries. @param {Record<string, number>} a @param {Record<string, number>} b */
function sameCounts (a, b) {
  const nonZero = (o) => Object.entries(o ?? {}).filter(([, v]) => v !== 0)
  const x = nonZero(a)
  return x.length === nonZero(b).length && x.every(([k, v]) => b[k] === v)
}

/**
 * @param {import('./batcher.js').Batcher} batcher
 * @param {{ledgerCounts?: () => {raw?: Record<string, number>, normalized?: Record<string, number>, internal?: Record<string, number>}}} source
 * @param {import('./log.js').Log} log
 * @returns {LedgerCounts}
 */
export function ledgerCounts (batcher, source, log = silentLog) {
  const counts = /** @type {LedgerCounts} */ ({ ...batcher.counts(), raw: {}, internal: {} })
  if (typeof source.ledgerCounts !== 'function') return counts
  let s
  try {
    s = source.ledgerCounts()
  } catch (e) {
    log(`source ledgerCounts() failed: ${e?.message ?? e} (raw and internal left empty)`)
    return counts
  }
  counts.raw = { ...s?.raw }
  counts.internal = { ...s?.internal }
  if (s?.normalized !== undefined && !sameCounts(s.normalized, counts.normalized)) counts.source_normalized = { ...s.normalized }
  return counts
}

/**
 * @param {object} p
 * @param {AsyncIterable<any> & {ledgerCounts?: () => any}} p.source
 * @param {import('./batcher.js').Batcher} p.batcher
 * @param {import('./sender.js').Sender} p.sender
 * @param {{source: string, exchanges: string[], data_types: string[], speed: string|number|null, ingester_version?: string}} p.startInfo
 * @param {AbortSignal} [p.signal] abort = stop now, end frame with reason source_closed
 * @param {number} [p.closeTimeoutMs] how long to wait for the end frame to reach ZeroMQ (default: the sender's linger)
 * @param {number} [p.ledgerIntervalMs] a `ledger` frame this often (default 0 = none)
 * @param {{busy: boolean, whenDrained: () => Promise<void>}|null} [p.recorder] with a recording
 *   (--record-dir): while too much of it waits to be written, pulling from the source waits too
 * @param {import('./log.js').Log} [p.log]
 * @returns {Promise<PipelineResult>}
 */
export async function runPipeline ({ source, batcher, sender, startInfo, signal, closeTimeoutMs, ledgerIntervalMs = 0, recorder = null, log = silentLog }) {
  batcher.start({ ingester_version: INGESTER_VERSION, ...startInfo }).catch(() => {})
  const counts = () => ledgerCounts(batcher, source, log)
  /** @type {PipelineResult['reason']} */
  let reason = 'source_closed'
  /** @type {string|null} */
  let error = null
  const it = source[Symbol.asyncIterator]()
  let finished = false
  let onAbort = null
  const aborted = new Promise((resolve) => {
    if (signal === undefined) return
    if (signal.aborted) resolve(ABORTED)
    onAbort = () => resolve(ABORTED)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  // While the loop waits in the middle of a value (back-pressure), `current` is that value and its
  // messages from `accepted` on are not in the batcher's counts yet: a ledger frame waits until the
  // value is pushed whole, so its counts match what the source has yielded.
  /** @type {any[]|null} */
  let current = null
  let accepted = 0
  let ledgerDue = false
  const sendLedger = () => {
    ledgerDue = false
    if (!batcher.ended) batcher.ledger(counts).catch(() => {})
  }
  const ledgerTimer = ledgerIntervalMs > 0
    ? setInterval(() => { if (current === null) sendLedger(); else ledgerDue = true }, ledgerIntervalMs).unref()
    : null
  /** Counts the messages of the current value not pushed yet as dropped. @param {string} why */
  const dropRest = (why) => {
    if (current === null) return
    for (let k = accepted; k < current.length; k++) batcher.drop(current[k], why)
    current = null
  }
  // One race for the whole run, not one per message: racing every next() against the abort signal
  // cost 40 % of the throughput (1.8 -> 1.05 M trades/s in bench/synthetic-send.js).
  let stopped = false
  const loop = (async () => {
    try {
      for (;;) {
        const r = await it.next()
        if (stopped) return // yielded after the end frame: in no ledger
        if (r.done) {
          finished = true
          log('source ended without an end message')
          reason = 'source_closed'
          return
        }
        const v = r.value
        if (!Array.isArray(v) && v.type === 'end') {
          reason = v.reason ?? 'source_closed'
          error = v.error ?? null
          if (reason === 'error') log(`source failed: ${error}`)
          return
        }
        const values = Array.isArray(v) ? v : [v]
        let k = 0
        try {
          for (; k < values.length; k++) {
            const p = batcher.push(values[k])
            if (p !== undefined) {
              current = values
              accepted = k + 1
              await p
              current = null
              if (stopped) return
            }
          }
        } catch (e) {
          if (current === null) { current = values; accepted = k } // push threw: values[k] is not counted
          throw e
        }
        if (ledgerDue) sendLedger()
        if (recorder !== null && recorder.busy) {
          await recorder.whenDrained()
          if (stopped) return
        }
      }
    } catch (e) {
      if (stopped) return
      reason = 'error'
      error = e?.message ?? String(e)
      log(`pipeline failed: ${error}`)
      dropRest('error')
    }
  })()
  try {
    if (await Promise.race([loop, aborted]) === ABORTED) {
      stopped = true
      log('stopping on signal')
      reason = 'source_closed'
      error = null
      dropRest('stopped')
    }
  } finally {
    if (ledgerTimer !== null) clearInterval(ledgerTimer)
    if (onAbort !== null) signal?.removeEventListener('abort', onAbort)
    if (!finished) {
      // stop the source (tardis-dev connections, replay server); a pending next() may keep it busy, so do not wait
      Promise.resolve().then(() => it.return?.()).catch(() => {})
    }
  }
  let endDelivered = false
  /** @type {LedgerCounts|null} */
  let endCounts = null
  try {
    const endSent = batcher.end({
      reason,
      error,
      counts: () => (endCounts = counts())
    })
    endSent.catch(() => {})
    endDelivered = await sender.close({ timeoutMs: closeTimeoutMs })
  } catch (e) {
    log(`could not send the end frame: ${e.message}`)
  }
  return { reason, error, counts: endCounts ?? counts(), endDelivered }
}
