// Synthetic trades for benchmarks: deterministic random-walk prices over N symbols, paced in ~1 ms
// steps at `rate` trades per real second, or as fast as the pipeline takes them (`max`). Event time
// runs `eventSpeed` times faster than real time (max mode: `eventStepUs` per trade) so candle
// boundaries come often. Bypasses tardis-dev: messages carry numeric µs `timestampUs` /
// `localTimestampUs` (the row conversion's fast path) and are yielded in arrays.
import { setTimeout as sleep } from 'node:timers/promises'

/** @param {number} seed */
function mulberry32 (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * @typedef {object} SyntheticOptions
 * @property {string} [exchange] default 'synthetic'
 * @property {number} [symbolsCount] symbols SYN000, SYN001, ... (default 100)
 * @property {number|'max'} [rate] trades per real second, or 'max' (default 'max')
 * @property {number} [total] trades in all (default Infinity: until stopped)
 * @property {number} [eventSpeed] event time advances this many times faster than real time (paced mode; default 60)
 * @property {number} [eventStepUs] event time step per trade in max mode (default 1000 µs)
 * @property {number} [startUs] event time of the first trade (default: now)
 * @property {number} [seed] PRNG seed (default 1)
 * @property {number} [chunk] max trades per yielded array (default 1000)
 */

/**
 * @param {SyntheticOptions} options
 * @returns {AsyncIterable<any> & {stats: Record<string, any>, symbols: string[]}}
 */
export function openSynthetic ({
  exchange = 'synthetic', symbolsCount = 100, rate = 'max', total = Infinity, eventSpeed = 60, eventStepUs = 1000,
  startUs = Date.now() * 1000, seed = 1, chunk = 1000
} = {}) {
  if (!Number.isInteger(symbolsCount) || symbolsCount < 1) throw new Error(`synthetic: symbolsCount must be a positive integer, got ${symbolsCount}`)
  if (rate !== 'max' && !(typeof rate === 'number' && rate > 0)) throw new Error(`synthetic: rate must be 'max' or a positive number, got ${rate}`)
  if (!(total >= 0)) throw new Error(`synthetic: total must be >= 0, got ${total}`)
  const width = Math.max(3, String(symbolsCount - 1).length)
  const symbols = Array.from({ length: symbolsCount }, (_, i) => `SYN${String(i).padStart(width, '0')}`)
  const stats = { trades: 0 }

  async function * run () {
    const rnd = mulberry32(seed)
    const prices = symbols.map(() => 100 + Math.floor(rnd() * 900000) / 100)
    let i = 0
    const make = (count, localUs, eventUsOf) => {
      const out = new Array(count)
      for (let k = 0; k < count; k++, i++) {
        const s = (rnd() * symbolsCount) | 0
        const r = rnd()
        const p = Math.round(prices[s] * (1 + (r - 0.5) * 0.001) * 100) / 100
        prices[s] = p > 0.01 ? p : 0.01
        out[k] = {
          type: 'trade',
          exchange,
          symbol: symbols[s],
          id: String(i),
          price: prices[s],
          amount: Math.round(rnd() * 100000) / 100000 + 0.00001,
          side: r < 0.5 ? 'buy' : 'sell',
          timestampUs: eventUsOf(i),
          localTimestampUs: localUs
        }
      }
      stats.trades += count
      return out
    }
    if (rate === 'max') {
      const eventUs = (n) => startUs + n * eventStepUs
      while (i < total) {
        yield make(Math.min(chunk, total - i), Date.now() * 1000, eventUs)
      }
    } else {
      const usPerTrade = 1e6 / rate
      const eventUs = (n) => startUs + Math.floor(n * usPerTrade * eventSpeed)
      const t0 = performance.now()
      while (i < total) {
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate))
        while (i < due) yield make(Math.min(chunk, due - i), Date.now() * 1000, eventUs)
        if (i < total) await sleep(1)
      }
    }
    yield { type: 'end', reason: 'replay_finished', error: null }
  }

  return { stats, symbols, [Symbol.asyncIterator]: () => run() }
}
