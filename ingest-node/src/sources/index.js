// One interface for every source: openSource(options) -> AsyncIterable<message> (with a `stats` object).
// Messages are tardis-dev normalized messages (discriminated by `type`), arrays of them (synthetic),
// `disconnect`s, and at most one final `{type: 'end', reason, error}`.
import { openTardisRealtime } from './tardis-realtime.js'
import { openReplay } from './replay.js'
import { openSynthetic } from './synthetic.js'
import { openTardisMachine } from './tardis-machine.js'

export const SOURCES = {
  'tardis-realtime': openTardisRealtime,
  replay: openReplay,
  synthetic: openSynthetic,
  'tardis-machine': openTardisMachine
}

/**
 * @param {{source: string} & Record<string, any>} options
 * @returns {AsyncIterable<any> & {stats: Record<string, any>}}
 */
export function openSource ({ source, ...options }) {
  const open = SOURCES[source]
  if (open === undefined) throw new Error(`unknown source ${JSON.stringify(source)} (known: ${Object.keys(SOURCES).join(', ')})`)
  return open(options)
}
