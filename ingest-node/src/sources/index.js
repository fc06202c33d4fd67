// One interface for every source: openSource(options) -> AsyncIterable<message> (with a `stats` object).
// Messages are tardis-dev normalized messages (discriminated by `type`), arrays of them (synthetic),
// `disconnect`s, and at most one final `{type: 'end', reason, error}`.
// With `streams` (several exchanges), one source per exchange merged into one stream (combine.js): a
// replay by exchange time, real time as the messages come; tardis-machine takes them all in one
// connection.
import { openTardisRealtime } from './tardis-realtime.js'
import { openReplay } from './replay.js'
import { openSynthetic } from './synthetic.js'
import { openTardisMachine } from './tardis-machine.js'
import { openCombined } from './combine.js'

export const SOURCES = {
  'tardis-realtime': openTardisRealtime,
  replay: openReplay,
  synthetic: openSynthetic,
  'tardis-machine': openTardisMachine
}

/** How the sources of several exchanges are merged. @type {Record<string, import('./combine.js').MergeOrder>} */
export const MERGE_ORDER = { replay: 'exchange-time', 'tardis-realtime': 'arrival' }

/**
 * @param {{source: string, streams?: import('./combine.js').StreamSpec[]} & Record<string, any>} options
 * @returns {AsyncIterable<any> & {stats: Record<string, any>}}
 */
export function openSource ({ source, streams, ...options }) {
  const open = SOURCES[source]
  if (open === undefined) throw new Error(`unknown source ${JSON.stringify(source)} (known: ${Object.keys(SOURCES).join(', ')})`)
  if (streams === undefined) return open(options)
  if (source === 'tardis-machine') return openTardisMachine({ ...options, streams })
  const order = MERGE_ORDER[source]
  if (order === undefined) throw new Error(`${source}: one exchange only`)
  return openCombined({ ...options, open, streams, order })
}
