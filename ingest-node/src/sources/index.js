// One interface for every source: openSource(options) -> AsyncIterable<message> (with a `stats` object).
// Messages are tardis-dev normalized messages (discriminated by `type`), arrays of them (synthetic),
// `disconnect`s, and at most one final `{type: 'end', reason, error}`.
// With `streams` (several exchanges), one source per exchange merged into one stream (combine.js): a
// replay by exchange time, real time as the messages come; tardis-machine takes them all in one
// connection.
//
// Sources are loaded lazily (issue 19, memory): tardis-dev and what it pulls in cost the ingester about
// 15 MiB of RSS, and the synthetic source needs none of it. The ingester (src/cli.js as the entry point)
// loads only the source its --source names; anything else importing this module (tests, library use)
// gets all of them before openSource is called, as before. `loadSource(name)` loads one explicitly.
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { openSynthetic } from './synthetic.js'
import { openCombined } from './combine.js'

/** How each source's module is loaded: name -> () => its open function. */
const LOADERS = {
  'tardis-realtime': async () => (await import('./tardis-realtime.js')).openTardisRealtime,
  replay: async () => (await import('./replay.js')).openReplay,
  synthetic: async () => openSynthetic,
  'tardis-machine': async () => (await import('./tardis-machine.js')).openTardisMachine
}

/** The sources known, by name. */
export const SOURCE_NAMES = Object.freeze(Object.keys(LOADERS))

/** The open functions of the sources loaded so far, by name. */
export const SOURCES = { synthetic: openSynthetic }

/** How the sources of several exchanges are merged. @type {Record<string, import('./combine.js').MergeOrder>} */
export const MERGE_ORDER = { replay: 'exchange-time', 'tardis-realtime': 'arrival' }

/**
 * Load a source's module (once); unknown names are left for openSource to reject with the list.
 * @param {string} name
 */
export async function loadSource (name) {
  if (Object.hasOwn(SOURCES, name) || !Object.hasOwn(LOADERS, name)) return
  SOURCES[name] = await LOADERS[name]()
}

/**
 * The sources to load before openSource is called: with src/cli.js as the entry point, the one its
 * `--source` names (none if it names none or an unknown one: the CLI rejects that itself); otherwise all.
 * @param {string[]} argv process.argv
 * @returns {string[]}
 */
export function preloadedSources (argv = process.argv) {
  if (!isCliEntry(argv[1])) return [...SOURCE_NAMES]
  const args = argv.slice(2)
  let name
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--') break
    if (args[i] === '--source') name = args[++i]
    else if (args[i].startsWith('--source=')) name = args[i].slice('--source='.length)
  }
  return name !== undefined && Object.hasOwn(LOADERS, name) ? [name] : []
}

/** @param {string|undefined} entry */
function isCliEntry (entry) {
  if (entry === undefined) return false
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(new URL('../cli.js', import.meta.url)))
  } catch {
    return false
  }
}

for (const name of preloadedSources()) await loadSource(name)

/**
 * @param {{source: string, streams?: import('./combine.js').StreamSpec[]} & Record<string, any>} options
 * @returns {AsyncIterable<any> & {stats: Record<string, any>}}
 */
export function openSource ({ source, streams, ...options }) {
  if (!Object.hasOwn(LOADERS, source)) throw new Error(`unknown source ${JSON.stringify(source)} (known: ${SOURCE_NAMES.join(', ')})`)
  const open = SOURCES[source]
  if (open === undefined) throw new Error(`source ${source} is not loaded: await loadSource(${JSON.stringify(source)}) first`)
  if (streams === undefined) return open(options)
  if (source === 'tardis-machine') return open({ ...options, streams })
  const order = MERGE_ORDER[source]
  if (order === undefined) throw new Error(`${source}: one exchange only`)
  return openCombined({ ...options, open, streams, order })
}
