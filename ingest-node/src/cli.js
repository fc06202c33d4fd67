#!/usr/bin/env node
// market-data-ingest: normalized market data -> binary columnar frames -> ZeroMQ PUSH.
// Logs go to stderr as `ingest: ...` lines (--log-format json: one JSON object a line, log.js); the
// last one is `ingest: summary {json}` (json: msg "summary {json}").
import { parseArgs } from 'node:util'
import { BlockList, isIP } from 'node:net'
import { curveKeyPair } from 'zeromq'
import { openSource } from './sources/index.js'
import { REPLAY_PATHS } from './sources/replay-paths.js'
import { Batcher, newSessionId } from './batcher.js'
import { Sender, isZ85Key } from './sender.js'
import { Journal } from './journal.js'
import { runPipeline, INGESTER_VERSION } from './pipeline.js'
import { createLog, redact, logFormatOf } from './log.js'
import { Recorder } from './recorder.js'
import { IngestMetrics, parseAddress, startMetricsServer } from './metrics.js'

const USAGE = `usage: node src/cli.js --source replay|tardis-realtime|synthetic|tardis-machine [options]
  --exchange binance            tardis exchange id
  --symbols btcusdt,ethusdt     symbols (exchange-native ids)
  --data-types trade            trade,book_snapshot,derivative_ticker,liquidation,option_summary
  --files a.gz,b.gz             replay: recordings, played back to back
  --exchanges binance,deribit   several exchanges in one session, merged into one stream (replay: by
                                exchange time; tardis-realtime, tardis-machine: as they come); then
                                --symbols, --data-types and --files take an exchange prefix, each
                                repeated per exchange:
                                  --symbols binance:btcusdt,ethusdt --symbols deribit:BTC-PERPETUAL
                                  --data-types binance:trade,book_snapshot --data-types deribit:trade
                                  --files binance:a.gz --files deribit:b.txt
                                a value without a prefix is for every exchange without one of its own
                                (--data-types default: trade; --symbols and --files: per exchange)
  --speed max                   replay: max | 1 (real time) | N (N times faster)
  --cut-after 0                 replay: drop the connection once after K frames
  --replay-path auto            replay: auto | direct (frames straight into tardis-dev's mappers,
                                local times = recorded) | websocket (through a local server);
                                auto = direct at --speed max without --cut-after, else websocket
  --endpoint tcp://127.0.0.1:5555  processor endpoint (it binds, we connect); a tcp host that is not
                                loopback (127.0.0.0/8, ::1, localhost) needs CURVE (see environment)
  --session <hex>               session id of the frames (1-64 hex digits; default: random per run);
                                the processor starts us with the one it expects
  --watch-parent                exit (code 3, queued frames dropped) as soon as the parent process (the
                                processor that started us) is gone, even if it was SIGKILLed
  --ledger-interval-ms 10000    a ledger frame (cumulative counts) this often; 0 = none
  --sndhwm 4                    ZeroMQ send high-water mark, frames
  --sndbuf 65536                kernel TCP send buffer, bytes (0 = OS default)
  --max-batch 2000              rows per frame at most
  --linger-ms 5000              how long to wait for the end frame to be delivered on exit
  --journal-dir data/journal    append every frame to a journal there before sending it, its jseq in
                                the frame's header (proto/README.md "Journal"); default: no journal
  --journal-file-mb 64 --journal-max-mb 4096 --journal-max-age-h 72
                                a journal file is closed at this size; the oldest files are deleted
                                past max-mb in all, or once last written max-age-h ago
  --when-busy wait|journal      when ZeroMQ cannot take a frame at once (no processor, or its queue
                                full): wait (back-pressure, what a processor that started us needs),
                                or journal: leave it in the journal only, counted, and go on (an
                                ingester run on its own); default: journal with --journal-dir, else wait
  --record-dir DIR              record every raw exchange message received (before normalization) to
                                DIR/<exchange>/<exchange>-<YYYY-MM-DDTHH>.gz (UTC hour of the local
                                receive time), lines "<ns> <json>": replayable with --source replay
  --metrics-address HOST:PORT   Prometheus /metrics and /health there (port 0: a free port, logged);
                                default: none (no metrics)
  --health-down-s 30            /health answers 503 once an exchange connection is down, or no
                                processor is connected, for longer than this
  --log-format text|json        stderr lines "ingest: ..." (text) or JSON objects {ts, level, logger,
                                msg}; default: $MDTH_LOG_FORMAT, else text
  --book-depth 10 --book-interval-ms 100   book_snapshot shape
  --timeout-interval-ms 10000   tardis-dev stale-connection timeout (replay default 0 = off)
  --symbols-count 100 --rate max --total N --event-speed 60 --event-step-us 1000 --seed 1   synthetic
  --machine-url ws://localhost:8001   tardis-machine
  --help
environment (keys are Z85, 40 characters; never logged):
  MDTH_CURVE_SERVER_KEY         the processor's CURVE public key: encrypt and authenticate the connection
                                (required for a non-loopback tcp endpoint, used for a loopback one when
                                set; ipc:// never uses CURVE)
  MDTH_CURVE_CLIENT_PUBLIC_KEY, MDTH_CURVE_CLIENT_SECRET_KEY   our keypair (both or neither;
                                default: a new one per run)
exit codes: 0 done, 1 error, 2 bad arguments or environment, 3 the parent is gone (--watch-parent),
  130 second signal`

const OPTIONS = {
  source: { type: 'string' },
  exchange: { type: 'string' },
  exchanges: { type: 'string' },
  // several values (an exchange prefix each, see streamSpecs); of those for the same exchange, the last wins
  symbols: { type: 'string', multiple: true },
  'data-types': { type: 'string', multiple: true },
  files: { type: 'string', multiple: true },
  speed: { type: 'string', default: 'max' },
  'cut-after': { type: 'string', default: '0' },
  'replay-path': { type: 'string', default: 'auto' },
  endpoint: { type: 'string', default: 'tcp://127.0.0.1:5555' },
  sndhwm: { type: 'string', default: '4' },
  sndbuf: { type: 'string', default: '65536' },
  'max-batch': { type: 'string', default: '2000' },
  'linger-ms': { type: 'string', default: '5000' },
  'book-depth': { type: 'string', default: '10' },
  'book-interval-ms': { type: 'string', default: '100' },
  'timeout-interval-ms': { type: 'string' },
  'symbols-count': { type: 'string', default: '100' },
  rate: { type: 'string', default: 'max' },
  total: { type: 'string' },
  'event-speed': { type: 'string', default: '60' },
  'event-step-us': { type: 'string', default: '1000' },
  seed: { type: 'string', default: '1' },
  'machine-url': { type: 'string', default: 'ws://localhost:8001' },
  session: { type: 'string' },
  'watch-parent': { type: 'boolean', default: false },
  'ledger-interval-ms': { type: 'string', default: '10000' },
  'journal-dir': { type: 'string' },
  'journal-file-mb': { type: 'string', default: '64' },
  'journal-max-mb': { type: 'string', default: '4096' },
  'journal-max-age-h': { type: 'string', default: '72' },
  'when-busy': { type: 'string' },
  'record-dir': { type: 'string' },
  'metrics-address': { type: 'string' },
  'health-down-s': { type: 'string', default: '30' },
  'log-format': { type: 'string' },
  help: { type: 'boolean', default: false }
}

/** @param {string} name @param {string} v @param {{min?: number, integer?: boolean}} [o] */
function number (name, v, { min = 0, integer = true } = {}) {
  const x = Number(v)
  if (!Number.isFinite(x) || x < min || (integer && !Number.isInteger(x))) {
    throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(v)}`)
  }
  return x
}
/** @param {string} name @param {string} v */
const maxOr = (name, v) => (v === 'max' ? 'max' : number(name, v, { min: Number.MIN_VALUE, integer: false }))
const list = (v) => (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')

const EXCHANGE_ID = /^[a-z0-9][a-z0-9-]*$/
const DEFAULT_EXCHANGE = 'binance'
const DEFAULT_SYMBOLS = 'btcusdt'
const DEFAULT_DATA_TYPES = 'trade'

/**
 * The values of a per-exchange option (`--symbols`, `--data-types`, `--files`), each `<exchange>:<list>`
 * or a bare `<list>` (for every exchange without a value of its own), by exchange: the last value given
 * for an exchange wins, then the last bare one. A prefix is the text before the first colon when it is
 * an exchange id (lower case): one of `exchanges`, else an error; anything else is a bare value
 * (`BTCF0:USTF0`, `/data/a:b.gz`).
 * @param {string} name option name, for errors
 * @param {string[]|undefined} values
 * @param {string[]} exchanges
 * @returns {{bare: string|undefined, of: Map<string, string>}}
 */
export function perExchange (name, values, exchanges) {
  /** @type {Map<string, string>} */
  const of = new Map()
  let bare
  for (const v of values ?? []) {
    const colon = v.indexOf(':')
    const prefix = colon > 0 ? v.slice(0, colon) : ''
    if (prefix !== '' && EXCHANGE_ID.test(prefix)) {
      if (!exchanges.includes(prefix)) throw new Error(`--${name} ${v}: ${prefix} is not one of the exchanges (${exchanges.join(', ')})`)
      of.set(prefix, v.slice(colon + 1))
    } else {
      bare = v
    }
  }
  return { bare, of }
}

/**
 * Each exchange's symbols, data types and (replay) files from the command line. One exchange
 * (`--exchange`, default binance): as ever, `--symbols` default btcusdt. Several (`--exchanges a,b`):
 * every exchange needs its symbols (and, for a replay, its files) given with its prefix (or bare, for
 * all: not for files).
 * @param {Record<string, any>} a parsed options
 * @returns {import('./sources/combine.js').StreamSpec[]}
 */
export function streamSpecs (a) {
  if (a.exchange !== undefined && a.exchanges !== undefined) throw new Error('give --exchange (one) or --exchanges (several), not both')
  const exchanges = a.exchanges === undefined ? [a.exchange ?? DEFAULT_EXCHANGE] : list(a.exchanges)
  if (exchanges.length === 0) throw new Error('--exchanges lists no exchange')
  const twice = exchanges.find((e, i) => exchanges.indexOf(e) !== i)
  if (twice !== undefined) throw new Error(`--exchanges lists ${twice} twice`)
  const single = exchanges.length === 1
  const symbols = perExchange('symbols', a.symbols, exchanges)
  const dataTypes = perExchange('data-types', a['data-types'], exchanges)
  const files = perExchange('files', a.files, exchanges)
  if (!single && files.bare !== undefined) throw new Error(`--files ${files.bare}: with several exchanges, say whose recordings they are: --files <exchange>:a.gz,b.gz`)
  return exchanges.map((exchange) => {
    const syms = symbols.of.get(exchange) ?? symbols.bare ?? (single ? DEFAULT_SYMBOLS : undefined)
    if (syms === undefined) throw new Error(`no symbols for ${exchange}: --symbols ${exchange}:<symbol>,...`)
    /** @type {import('./sources/combine.js').StreamSpec} */
    const spec = { exchange, symbols: list(syms), dataTypes: list(dataTypes.of.get(exchange) ?? dataTypes.bare ?? DEFAULT_DATA_TYPES) }
    const recordings = files.of.get(exchange) ?? files.bare
    if (recordings !== undefined) spec.files = list(recordings)
    return spec
  })
}

/** @param {string[]} argv */
export function parseCli (argv) {
  const { values: a } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false })
  if (a.help) return { help: true }
  if (a.source === undefined) throw new Error('--source is required (replay, tardis-realtime, synthetic or tardis-machine)')
  const streams = streamSpecs(a)
  const several = streams.length > 1
  const book = {
    bookDepth: number('book-depth', a['book-depth'], { min: 1 }),
    bookIntervalMs: number('book-interval-ms', a['book-interval-ms'])
  }
  // one exchange: its options at the top, as the sources take them; several: `streams`
  const { exchange, symbols, dataTypes } = streams[0]
  const common = several ? { streams: streams.map(({ files, ...s }) => s), ...book } : { exchange, symbols, dataTypes, ...book }
  if (a['timeout-interval-ms'] !== undefined) common.timeoutIntervalMS = number('timeout-interval-ms', a['timeout-interval-ms'])
  let sourceOptions
  let speed = 1
  switch (a.source) {
    case 'replay': {
      speed = maxOr('speed', a.speed)
      const cutAfter = number('cut-after', a['cut-after'])
      const replayPath = a['replay-path']
      if (!REPLAY_PATHS.includes(replayPath)) throw new Error(`--replay-path must be ${REPLAY_PATHS.join(', ')}, got ${JSON.stringify(replayPath)}`)
      // auto (openReplay's default) is left out, so the options stay as they were without the flag
      const path = replayPath === 'auto' ? {} : { replayPath }
      const without = streams.find((s) => (s.files ?? []).length === 0)
      if (without !== undefined) throw new Error(several ? `--files is required with --source replay: --files ${without.exchange}:<recording>,...` : '--files is required with --source replay')
      sourceOptions = several
        ? { ...common, streams: streams.map((s) => ({ ...s })), speed, cutAfter, ...path }
        : { ...common, files: streams[0].files, speed, cutAfter, ...path }
      break
    }
    case 'tardis-realtime':
      sourceOptions = common
      break
    case 'tardis-machine':
      sourceOptions = { ...common, url: a['machine-url'] }
      break
    case 'synthetic': {
      if (several) throw new Error('--source synthetic streams one exchange (--exchange), not --exchanges')
      const rate = maxOr('rate', a.rate)
      const eventSpeed = number('event-speed', a['event-speed'], { min: Number.MIN_VALUE, integer: false })
      speed = rate === 'max' ? 'max' : eventSpeed
      sourceOptions = {
        exchange: streams[0].exchange === DEFAULT_EXCHANGE ? 'synthetic' : streams[0].exchange,
        symbolsCount: number('symbols-count', a['symbols-count'], { min: 1 }),
        rate,
        total: a.total === undefined ? Infinity : number('total', a.total),
        eventSpeed,
        eventStepUs: number('event-step-us', a['event-step-us'], { min: 0, integer: false }),
        seed: number('seed', a.seed)
      }
      break
    }
    default:
      throw new Error(`unknown --source ${JSON.stringify(a.source)} (replay, tardis-realtime, synthetic or tardis-machine)`)
  }
  if (a.session !== undefined && !/^[0-9a-fA-F]{1,64}$/.test(a.session)) {
    throw new Error(`--session must be 1 to 64 hex digits, got ${JSON.stringify(a.session)}`)
  }
  const journalDir = a['journal-dir']
  if (journalDir === '') throw new Error('--journal-dir must name a directory')
  const journal = journalDir === undefined
    ? null
    : {
        dir: journalDir,
        fileMb: number('journal-file-mb', a['journal-file-mb'], { min: 1 }),
        maxMb: number('journal-max-mb', a['journal-max-mb'], { min: 1 }),
        maxAgeH: number('journal-max-age-h', a['journal-max-age-h'], { min: Number.MIN_VALUE, integer: false })
      }
  const whenBusy = a['when-busy'] ?? (journal === null ? 'wait' : 'journal')
  if (whenBusy !== 'wait' && whenBusy !== 'journal') throw new Error(`--when-busy must be wait or journal, got ${JSON.stringify(whenBusy)}`)
  if (whenBusy === 'journal' && journal === null) throw new Error('--when-busy journal needs --journal-dir: without a journal a frame ZeroMQ cannot take would be lost')
  if (a['record-dir'] === '') throw new Error('--record-dir must name a directory')
  if (a['metrics-address'] !== undefined) parseAddress(a['metrics-address'])
  return {
    help: false,
    source: a.source,
    streams: streams.map(({ files, ...s }) => s),
    sourceOptions,
    speed,
    session: a.session ?? null,
    watchParent: a['watch-parent'],
    ledgerIntervalMs: number('ledger-interval-ms', a['ledger-interval-ms']),
    endpoint: a.endpoint,
    sndhwm: number('sndhwm', a.sndhwm, { min: 1 }),
    sndbuf: number('sndbuf', a.sndbuf),
    maxBatch: number('max-batch', a['max-batch'], { min: 1 }),
    lingerMs: number('linger-ms', a['linger-ms']),
    journal,
    whenBusy,
    recordDir: a['record-dir'] ?? null,
    metricsAddress: a['metrics-address'] ?? null,
    healthDownS: number('health-down-s', a['health-down-s'], { min: Number.MIN_VALUE, integer: false }),
    logFormat: logFormatOf(a['log-format'])
  }
}

/**
 * The value of `--log-format` in argv (either spelling), before the arguments are parsed: the first
 * log line (a bad argument) is already in that format.
 * @param {string[]} argv
 */
function logFormatArg (argv) {
  let flag
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--log-format') flag = argv[i + 1]
    else if (argv[i].startsWith('--log-format=')) flag = argv[i].slice('--log-format='.length)
  }
  try {
    return logFormatOf(flag)
  } catch {
    return 'text' // parseCli reports it
  }
}

/**
 * The host of a tcp:// endpoint (IPv6 without brackets; the peer after `;` if a source address is
 * given), or null for other transports.
 * @param {string} endpoint
 * @returns {string|null}
 */
export function endpointHost (endpoint) {
  const m = /^tcp:\/\/(.+)$/.exec(endpoint)
  if (m === null) return null
  const peer = m[1].slice(m[1].lastIndexOf(';') + 1)
  const v6 = /^\[([^\]]*)\](?::[^:]*)?$/.exec(peer)
  if (v6 !== null) return v6[1]
  const colon = peer.lastIndexOf(':')
  return colon >= 0 ? peer.slice(0, colon) : peer
}

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/** 127.0.0.0/8, ::1 (any spelling, IPv4-mapped 127.x too) and localhost; any other name is not. @param {string} host */
export function isLoopbackHost (host) {
  if (host.toLowerCase() === 'localhost') return true
  const family = isIP(host)
  return family !== 0 && LOOPBACK.check(host, family === 6 ? 'ipv6' : 'ipv4')
}

/**
 * CURVE keys from the environment for this endpoint, as the processor decides (config.py, curve.py):
 * only tcp:// endpoints use CURVE (ipc:// and inproc:// never: null); a loopback one when
 * MDTH_CURVE_SERVER_KEY is set, any other one always (an error without it). The client keypair comes
 * from MDTH_CURVE_CLIENT_PUBLIC_KEY + MDTH_CURVE_CLIENT_SECRET_KEY, or is generated. Error messages
 * name the variables, never their values.
 * @param {string} endpoint
 * @param {Record<string, string|undefined>} [env]
 * @returns {(import('./sender.js').CurveKeys & {generated: boolean})|null}
 */
export function curveFromEnv (endpoint, env = process.env) {
  const serverKey = (env.MDTH_CURVE_SERVER_KEY ?? '').trim()
  const host = endpointHost(endpoint)
  if (host === null) return null
  if (serverKey === '') {
    if (!isLoopbackHost(host)) {
      throw new Error(`endpoint ${endpoint} is not a loopback address, so the connection must use CURVE: set MDTH_CURVE_SERVER_KEY to the processor's public key (Z85, 40 characters)`)
    }
    return null
  }
  if (!isZ85Key(serverKey)) throw new Error(`MDTH_CURVE_SERVER_KEY must be a Z85-encoded CURVE public key (40 characters), it has ${serverKey.length} characters or others than Z85`)
  const publicKey = (env.MDTH_CURVE_CLIENT_PUBLIC_KEY ?? '').trim()
  const secretKey = (env.MDTH_CURVE_CLIENT_SECRET_KEY ?? '').trim()
  if (publicKey === '' && secretKey === '') return { serverKey, ...curveKeyPair(), generated: true }
  if (publicKey === '' || secretKey === '') throw new Error('set both MDTH_CURVE_CLIENT_PUBLIC_KEY and MDTH_CURVE_CLIENT_SECRET_KEY, or neither (a keypair is generated)')
  for (const [name, key] of [['MDTH_CURVE_CLIENT_PUBLIC_KEY', publicKey], ['MDTH_CURVE_CLIENT_SECRET_KEY', secretKey]]) {
    if (!isZ85Key(key)) throw new Error(`${name} must be a Z85-encoded CURVE key (40 characters)`)
  }
  return { serverKey, publicKey, secretKey, generated: false }
}

/**
 * Calls onGone once when the parent process changes (it died and this process was re-parented), polling
 * process.ppid on an unref'd timer.
 * @param {{onGone: (parentPid: number) => void, intervalMs?: number, ppid?: () => number}} o
 * @returns {() => void} stops watching
 */
export function watchParent ({ onGone, intervalMs = 500, ppid = () => process.ppid }) {
  const parent = ppid()
  const timer = setInterval(() => {
    if (ppid() === parent) return
    clearInterval(timer)
    onGone(parent)
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}

/**
 * exchange -> its subscribed symbols, upper-cased (exchange-native ids): the start frame's symbol table
 * and a disconnect's rows when the message names no symbol.
 * @param {{source: string, streams: {exchange: string, symbols: string[]}[], sourceOptions: any}} cfg
 * @param {{symbols?: string[]}} source
 * @returns {Record<string, string[]>}
 */
export function subscribedOf (cfg, source) {
  if (cfg.source === 'synthetic') return { [cfg.sourceOptions.exchange]: (source.symbols ?? []).map((s) => s.toUpperCase()) }
  return Object.fromEntries(cfg.streams.map((s) => [s.exchange, s.symbols.map((sym) => sym.toUpperCase())]))
}

/**
 * The start frame's fields (proto/README.md "Frame types"). `data_types`: the types actually streamed
 * (a source drops those tardis-dev cannot stream for the exchange, or the recording does not hold), and
 * `unavailable`: why the others are not (the processor repeats the reason in its warning). With several
 * exchanges, `data_types` is the union, `unavailable` names the exchange in each reason, and `streams`
 * says it per exchange: `{<exchange>: {data_types, unavailable}}`; a one-exchange start frame has no
 * `streams`.
 * @param {{source: string, speed: string|number, streams: {exchange: string, dataTypes: string[]}[]}} cfg
 * @param {{dataTypes?: string[], unavailable?: {type: string, reason: string}[], streams?: import('./sources/combine.js').StreamInfo[]}} source
 */
export function startInfoOf (cfg, source) {
  const reasons = (unavailable) => Object.fromEntries((unavailable ?? []).map((u) => [u.type, u.reason]))
  const info = {
    source: cfg.source,
    exchanges: cfg.source === 'synthetic' ? [cfg.sourceOptions.exchange] : cfg.streams.map((s) => s.exchange),
    data_types: source.dataTypes ?? (cfg.source === 'synthetic' ? ['trade'] : cfg.streams[0].dataTypes),
    unavailable: reasons(source.unavailable),
    speed: cfg.speed
  }
  if (source.streams === undefined) return info
  return {
    ...info,
    streams: Object.fromEntries(source.streams.map((s) => [s.exchange, { data_types: s.dataTypes, unavailable: reasons(s.unavailable) }]))
  }
}

export async function main (argv = process.argv.slice(2)) {
  const log = createLog(process.stderr, { format: logFormatArg(argv) })
  let cfg
  try {
    cfg = parseCli(argv)
  } catch (e) {
    log.error(`bad arguments: ${e.message}`)
    process.stderr.write(USAGE + '\n')
    return 2
  }
  if (cfg.help) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  let curve
  try {
    curve = curveFromEnv(cfg.endpoint)
  } catch (e) {
    log.error(`bad environment: ${e.message}`)
    return 2
  }
  /** @type {Sender|undefined} */
  let sender
  /** @type {Journal|null} */
  let journal = null
  /** @type {Recorder|null} */
  let recorder = null
  if (cfg.watchParent) {
    watchParent({
      onGone: (pid) => {
        log(`processor (pid ${pid}) is gone: exiting`)
        try { sender?.abort() } catch {}
        try { journal?.close() } catch {}
        process.exit(3)
      }
    })
  }
  const session = cfg.session ?? newSessionId()
  const security = curve === null ? '' : `, CURVE with ${curve.generated ? 'a generated' : 'the environment\'s'} client keypair`
  const journaling = cfg.journal === null ? '' : `, journal in ${cfg.journal.dir}, when busy: ${cfg.whenBusy}`
  log(`session ${session}: ${cfg.source} ${JSON.stringify(redact(cfg.sourceOptions))} -> ${cfg.endpoint} (sndhwm ${cfg.sndhwm}, sndbuf ${cfg.sndbuf}, max batch ${cfg.maxBatch}${security}${journaling})`)
  let source
  try {
    if (cfg.journal !== null) journal = new Journal({ ...cfg.journal, log }).open()
    if (cfg.recordDir !== null) {
      if (cfg.source === 'synthetic' || cfg.source === 'tardis-machine') {
        log(`--record-dir ${cfg.recordDir}: ${cfg.source} receives no raw exchange messages: nothing is recorded`)
      } else {
        recorder = new Recorder({ dir: cfg.recordDir, log })
        log(`recording: raw messages to ${cfg.recordDir}/<exchange>/<exchange>-<YYYY-MM-DDTHH>.gz (UTC hour of the local receive time)`)
      }
    }
    source = openSource({ source: cfg.source, ...cfg.sourceOptions, recorder, log })
    sender = new Sender({ endpoint: cfg.endpoint, sndhwm: cfg.sndhwm, sndbuf: cfg.sndbuf, lingerMs: cfg.lingerMs, curve, busy: cfg.whenBusy, journal, log })
  } catch (e) {
    journal?.close()
    await recorder?.close()
    log.error(`cannot start: ${e.message}`)
    log(`summary ${JSON.stringify({ reason: 'error', error: e.message })}`)
    return 1
  }
  const batcher = new Batcher({
    send: (f) => sender.send(f),
    maxBatch: cfg.maxBatch,
    session,
    subscribed: subscribedOf(cfg, source),
    journal,
    log
  })
  const exchanges = startInfoOf(cfg, source).exchanges
  /** @type {IngestMetrics|null} */
  let metrics = null
  /** @type {import('./metrics.js').MetricsServer|null} */
  let metricsServer = null
  if (cfg.metricsAddress !== null) {
    metrics = new IngestMetrics({ batcher, sender, source, exchanges, journal, recorder, downS: cfg.healthDownS, info: { session, source: cfg.source, version: INGESTER_VERSION } })
    metricsServer = await startMetricsServer({ address: cfg.metricsAddress, metrics, log })
  }
  const controller = new AbortController()
  let signals = 0
  const onSignal = (sig) => {
    signals++
    if (signals > 1) {
      log(`second ${sig}: exiting now`)
      process.exit(130)
    }
    log(`${sig}: sending end (source_closed) and exiting`)
    controller.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const t0 = performance.now()
  const result = await runPipeline({
    source,
    batcher,
    sender,
    signal: controller.signal,
    ledgerIntervalMs: cfg.ledgerIntervalMs,
    recorder,
    log,
    startInfo: startInfoOf(cfg, source)
  })
  const seconds = (performance.now() - t0) / 1000
  if (metrics !== null) metrics.ended = true
  journal?.close()
  const recording = recorder === null ? undefined : await closeRecorder(recorder, cfg.lingerMs, log)
  if (!result.endDelivered && !sender.lastJournalOnly) log(`the processor at ${cfg.endpoint} did not confirm the end frame within ${cfg.lingerMs} ms (is it running?)`)
  const summary = {
    session,
    reason: result.reason,
    error: result.error,
    seconds: Math.round(seconds * 1000) / 1000,
    counts: result.counts,
    sender: { ...sender.stats, blockedMs: Math.round(sender.stats.blockedMs) },
    source: source.stats,
    ...(recording === undefined ? {} : { recording }),
    ...(metricsServer === null ? {} : { metrics: { address: metricsServer.address, bind_errors: metricsServer.bindErrors } })
  }
  log(`summary ${JSON.stringify(summary)}`)
  await metricsServer?.close()
  return result.reason === 'error' ? 1 : 0
}

/**
 * Writes what the recorder holds and closes its files (complete gzip files), waiting at most
 * max(timeoutMs, 10 s); its counts for the summary.
 * @param {Recorder} recorder @param {number} timeoutMs @param {import('./log.js').Log} log
 */
async function closeRecorder (recorder, timeoutMs, log) {
  const waitMs = Math.max(timeoutMs, 10_000)
  let timer
  const closed = await Promise.race([
    recorder.close().then(() => true),
    new Promise((resolve) => { timer = setTimeout(() => resolve(false), waitMs) })
  ])
  clearTimeout(timer)
  if (!closed) log(`recording: not all written within ${waitMs} ms; the last block may be missing from its file`)
  return { ...recorder.stats, by_exchange: recorder.countsByExchange() }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/src/cli.js')) {
  main().then((code) => {
    process.exitCode = code
    // ZeroMQ delivers the end frame (already in its queue) while the process winds down naturally; if a
    // source left timers or sockets behind (tardis-dev back-off, its REST polling), exit anyway.
    setTimeout(() => process.exit(code), 2000).unref()
  }, (e) => {
    createLog(process.stderr, { format: logFormatArg(process.argv.slice(2)) }).error(`fatal: ${e?.stack ?? e}`)
    process.exit(1)
  })
}
