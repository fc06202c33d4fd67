// Prometheus metrics of the ingester (`--metrics-address HOST:PORT`): `/metrics` (prom-client text
// format, a registry of its own) and `/health` (200 / 503 with a JSON body), over node:http.
// The counters are read at scrape time from the counts the ingester keeps anyway: the ledger counts its
// ledger and end frames carry (pipeline.js ledgerCounts: the same function), the sender's, the
// source's, the journal's and the recorder's stats, so a scrape and the end frame agree by construction.
// Only frame sizes, rows per frame and send waits are observed as they happen (histograms).
// A port that cannot be bound is one log line naming the address and the cause, counted (the summary's
// `metrics.bind_errors`); the ingester goes on without metrics.
import { createServer } from 'node:http'
import { isIP } from 'node:net'
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'
import { ledgerCounts } from './pipeline.js'
import { silentLog } from './log.js'

const P = 'mdth_ingest_'

/**
 * `HOST:PORT` (IPv6 in brackets: `[::1]:9465`); port 0 = a free port.
 * @param {string} address
 * @returns {{host: string, port: number}}
 */
export function parseAddress (address) {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(String(address ?? '').trim())
  const host = m?.[1] ?? m?.[2]
  const port = Number(m?.[3])
  if (m === null || host === undefined || !(port >= 0 && port <= 65535) || (m[1] !== undefined && isIP(m[1]) !== 6)) {
    throw new Error(`--metrics-address must be HOST:PORT (e.g. 127.0.0.1:9465, [::1]:9465; port 0 = any free port), got ${JSON.stringify(address)}`)
  }
  return { host, port }
}

/** @param {string} host @param {number} port */
const hostPort = (host, port) => (isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`)

/** The stats of tardis-dev's stream inside a source's stats (replay: `.tardis`; tardis-realtime: itself). @param {any} stats */
const tardisOf = (stats) => (stats?.tardis !== undefined ? stats.tardis : stats?.feed !== undefined ? stats : null)

/**
 * @typedef {object} IngestParts what the metrics read
 * @property {import('./batcher.js').Batcher} batcher
 * @property {import('./sender.js').Sender} sender
 * @property {any} source
 * @property {string[]} exchanges
 * @property {import('./journal.js').Journal|null} [journal]
 * @property {import('./recorder.js').Recorder|null} [recorder]
 * @property {{session: string, source: string, version: string}} info
 */

/**
 * @typedef {object} HealthOptions
 * @property {number} [downS] a source's connection down (a disconnect and no message since), or no
 *   processor connected, for longer than this -> unhealthy (default 30)
 * @property {() => number} [nowMs]
 */

export class IngestMetrics {
  /** @param {IngestParts & HealthOptions} o */
  constructor ({ batcher, sender, source, exchanges, journal = null, recorder = null, info, downS = 30, nowMs = Date.now }) {
    this.parts = { batcher, sender, source, exchanges, journal, recorder }
    this.downMs = downS * 1000
    this.nowMs = nowMs
    this.startedMs = nowMs()
    /** set when the pipeline is over: /health answers 503 "stopping" */
    this.ended = false
    const registry = new Registry()
    this.registry = registry
    collectDefaultMetrics({ register: registry, prefix: P })
    const self = this
    /** a counter whose values are read at scrape time @param {string} name @param {string} help @param {string[]} labelNames @param {() => Iterable<[Record<string, string>, number]>} read */
    const counter = (name, help, labelNames, read) => new Counter({
      name: P + name,
      help,
      labelNames,
      registers: [registry],
      collect () {
        this.reset()
        for (const [labels, v] of read()) if (Number.isFinite(v) && v >= 0) this.inc(labels, v)
      }
    })
    const gauge = (name, help, labelNames, read) => new Gauge({
      name: P + name,
      help,
      labelNames,
      registers: [registry],
      collect () {
        this.reset()
        for (const [labels, v] of read()) this.set(labels, v)
      }
    })
    const entries = (/** @type {Record<string, number>|undefined} */ o, label) => Object.entries(o ?? {}).map(([k, v]) => /** @type {[Record<string, string>, number]} */ ([{ [label]: k }, v]))
    const one = (v) => [[{}, v ?? 0]]
    const ledger = () => ledgerCounts(batcher, source)

    // the ledger: the counts the ledger and end frames carry (proto/README.md "Ledger counts")
    counter('ledger_normalized_total', 'Normalized messages the pipeline took (pushed or dropped), per tardis message type (ledger `normalized`)', ['type'], () => entries(ledger().normalized, 'type'))
    counter('ledger_rows_total', 'Rows in frames enqueued, per frame type (ledger `rows`)', ['type'], () => entries(ledger().rows, 'type'))
    counter('ledger_frames_total', 'Frames enqueued, per frame type (ledger `frames_by_type`)', ['type'], () => entries(ledger().frames_by_type, 'type'))
    counter('ledger_bytes_total', 'Bytes of the frames encoded (ledger `bytes`)', [], () => one(ledger().bytes))
    counter('ledger_dropped_total', 'Messages that became no row, per reason and message type (ledger `dropped`)', ['reason', 'type'], () => Object.entries(ledger().dropped).map(([k, v]) => {
      const at = k.indexOf(':')
      return [{ reason: k.slice(0, at), type: k.slice(at + 1) }, v]
    }))
    counter('ledger_raw_total', 'The source\'s raw counts (ledger `raw`: received by tardis-dev\'s feed; replay: read, sent, skipped too)', ['kind'], () => entries(ledger().raw, 'kind'))
    counter('ledger_internal_total', 'Normalized messages that only feed a computable, e.g. book_change (ledger `internal`)', ['type'], () => entries(ledger().internal, 'type'))

    // per exchange
    counter('messages_total', 'Normalized messages the source yielded, per exchange and tardis type (disconnect included)', ['exchange', 'type'], () => this._perExchange((ex, c) => entries(c.normalized, 'type').map(([l, v]) => [{ exchange: ex, ...l }, v])))
    counter('raw_messages_total', 'Raw exchange messages tardis-dev\'s feed received (before normalization), per exchange', ['exchange'], () => this._perExchange((ex, c) => (c.raw?.received === undefined ? [] : [[{ exchange: ex }, c.raw.received]])))
    counter('disconnects_total', 'Connection drops the source yielded as disconnect messages (each one a disconnect frame), per exchange', ['exchange'], () => this._perExchange((ex, c) => [[{ exchange: ex }, c.normalized?.disconnect ?? 0]]))
    counter('reconnects_total', 'Drops after data had flowed (tardis-dev reconnects), per exchange', ['exchange'], () => this._tardis((ex, t) => [[{ exchange: ex }, t.reconnects ?? 0]]))
    counter('connection_errors_total', 'Connection errors tardis-dev reported, per exchange', ['exchange'], () => this._tardis((ex, t) => [[{ exchange: ex }, t.connectionErrors ?? 0]]))
    counter('snapshot_failures_total', 'REST manual snapshots that failed (each closed its connection), per exchange', ['exchange'], () => this._tardis((ex, t) => [[{ exchange: ex }, t.feed?.snapshotFailures ?? 0]]))
    gauge('exchange_connected', '1 while the exchange connection is up (no disconnect without a message after it), per exchange', ['exchange'], () => this._tardis((ex, t) => [[{ exchange: ex }, this._downSinceMs(t) === null ? 1 : 0]]))

    // sender
    counter('frames_sent_total', 'Frames ZeroMQ took, per frame type', ['type'], () => entries(this._sent, 'type'))
    counter('sent_bytes_total', 'Bytes of the frames ZeroMQ took', [], () => one(sender.stats.bytes))
    counter('blocked_sends_total', 'Sends that found ZeroMQ full (high-water mark) and waited: back-pressure', [], () => one(sender.stats.blockedSends))
    counter('blocked_seconds_total', 'Time spent waiting on those sends', [], () => one(sender.stats.blockedMs / 1000))
    counter('frames_journal_only_total', 'Frames ZeroMQ could not take at once, left in the journal only (--when-busy journal)', [], () => one(sender.stats.journalOnly))
    counter('handshake_errors_total', 'Failed ZeroMQ security handshakes (CURVE)', [], () => one(sender.stats.handshakeErrors))
    gauge('processor_connected', '1 while a processor is connected to the ZeroMQ socket', [], () => one(sender.peerConnected ? 1 : 0))
    this.frameBytes = new Histogram({ name: P + 'frame_bytes', help: 'Size of the frames ZeroMQ took, per frame type', labelNames: ['type'], buckets: [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304], registers: [registry] })
    this.frameRows = new Histogram({ name: P + 'frame_rows', help: 'Rows per frame ZeroMQ took, per frame type', labelNames: ['type'], buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000], registers: [registry] })
    this.sendWait = new Histogram({ name: P + 'send_wait_seconds', help: 'How long a send that found ZeroMQ full waited', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers: [registry] })
    /** @type {Record<string, number>} */
    this._sent = {}
    sender.onSent = (type, bytes, rows, blockedMs) => {
      this._sent[type] = (this._sent[type] ?? 0) + 1
      this.frameBytes.observe({ type }, bytes)
      this.frameRows.observe({ type }, rows)
      if (blockedMs > 0) this.sendWait.observe(blockedMs / 1000)
    }

    // journal
    const j = (/** @type {keyof import('./journal.js').JournalCounts} */ k) => () => (journal === null ? [] : one(journal.stats[k]))
    counter('journal_records_total', 'Frames appended to the journal', [], j('records'))
    counter('journal_bytes_total', 'Bytes appended to the journal (record headers included)', [], j('bytes'))
    counter('journal_files_total', 'Journal files opened', [], j('files'))
    counter('journal_deleted_files_total', 'Journal files deleted by retention', [], j('deleted'))
    counter('journal_deleted_bytes_total', 'Bytes of the journal files deleted by retention', [], j('deleted_bytes'))
    counter('journal_torn_tails_total', 'Torn tails found in the newest journal file at start', [], j('torn_tails'))

    // recording
    const r = (/** @type {keyof import('./recorder.js').RecorderCounts} */ k) => () => (recorder === null ? [] : Object.entries(recorder.countsByExchange()).map(([ex, c]) => /** @type {[Record<string, string>, number]} */ ([{ exchange: ex }, c[k]])))
    counter('recorded_messages_total', 'Raw messages taken by the recording, per exchange', ['exchange'], r('messages'))
    counter('recorded_bytes_total', 'Uncompressed bytes of the lines written to the recording, per exchange', ['exchange'], r('bytes'))
    counter('recorded_gzip_bytes_total', 'gzip bytes written to the recording files, per exchange', ['exchange'], r('written'))
    counter('recording_files_total', 'Recording files opened, per exchange', ['exchange'], r('files'))
    counter('recording_errors_total', 'Failed recording writes (open, compress, write, close), per exchange', ['exchange'], r('errors'))
    counter('recording_lost_total', 'Lines of blocks that could not be written to the recording, per exchange', ['exchange'], r('lost'))
    counter('recording_after_close_total', 'Raw messages that came after the recording was closed (the session had ended), not recorded, per exchange', ['exchange'], r('after_close'))
    gauge('recording_queued_bytes', 'Recording lines waiting to be written (characters)', [], () => (recorder === null ? [] : one(recorder.queued)))

    gauge('info', 'The ingester: version, session, source (always 1)', ['version', 'session', 'source'], () => [[{ version: info.version, session: info.session, source: info.source }, 1]])
    gauge('healthy', '1 when /health answers 200', [], () => one(self.health().ok ? 1 : 0))
  }

  /**
   * Each exchange's own ledger counts (several exchanges: each source's; one: the source's own, else the
   * pipeline's), mapped to label/value pairs.
   * @param {(exchange: string, counts: any) => [Record<string, string>, number][]} f
   */
  _perExchange (f) {
    const { source, batcher, exchanges } = this.parts
    if (typeof source.ledgerCountsByExchange === 'function') {
      return Object.entries(source.ledgerCountsByExchange()).flatMap(([ex, c]) => f(ex, c ?? {}))
    }
    const own = typeof source.ledgerCounts === 'function' ? source.ledgerCounts() : {}
    return f(exchanges[0], { raw: own?.raw ?? {}, normalized: own?.normalized ?? batcher.counts().normalized })
  }

  /** @param {(exchange: string, tardis: any) => [Record<string, string>, number][]} f */
  _tardis (f) {
    return this._tardisStats().flatMap(([ex, t]) => f(ex, t))
  }

  /** tardis-dev stream stats per exchange (none for synthetic and tardis-machine). @returns {[string, any][]} */
  _tardisStats () {
    const { source, exchanges } = this.parts
    const per = source.stats?.exchanges !== undefined ? Object.entries(source.stats.exchanges) : [[exchanges[0], source.stats]]
    return per.map(([ex, st]) => /** @type {[string, any]} */ ([ex, tardisOf(st)])).filter(([, t]) => t !== null)
  }

  /** Since when (ms) an exchange's connection is down, or null while it is up. @param {any} t tardis stream stats */
  _downSinceMs (t) {
    const last = t.feed?.lastMessageMs ?? 0
    if (t.lastDisconnectMs > 0 && t.lastDisconnectMs >= last) return t.lastDisconnectMs
    if (last === 0) return this.startedMs // never connected yet
    return null
  }

  /**
   * 200 while streaming; 503 (with the reasons) when an exchange connection has been down (or never up)
   * for longer than downS, no processor has been connected to the ZeroMQ socket for longer than downS,
   * or the pipeline is over.
   * @returns {{ok: boolean, status: string, reasons: string[], exchanges: Record<string, {connected: boolean, down_s: number}>, processor_connected: boolean}}
   */
  health () {
    const now = this.nowMs()
    const reasons = []
    /** @type {Record<string, {connected: boolean, down_s: number}>} */
    const exchanges = {}
    for (const [ex, t] of this._tardisStats()) {
      const since = this._downSinceMs(t)
      const downS = since === null ? 0 : Math.round((now - since) / 100) / 10
      exchanges[ex] = { connected: since === null, down_s: downS }
      if (since !== null && now - since > this.downMs) {
        reasons.push(`${ex}: ${t.feed?.lastMessageMs ? 'connection down' : 'no message since the start'} for ${downS} s (limit ${this.downMs / 1000} s)`)
      }
    }
    const { sender } = this.parts
    if (!sender.peerConnected && now - sender.peerDownSinceMs > this.downMs) {
      reasons.push(`no processor connected at ${sender.endpoint} for ${Math.round((now - sender.peerDownSinceMs) / 1000)} s (limit ${this.downMs / 1000} s)`)
    }
    if (this.ended) reasons.push('stopping: the stream is over')
    const ok = reasons.length === 0
    return { ok, status: ok ? 'ok' : 'unhealthy', reasons, exchanges, processor_connected: sender.peerConnected }
  }
}

/**
 * @typedef {object} MetricsServer
 * @property {string|null} address the bound HOST:PORT, null when it could not be bound
 * @property {number} bindErrors
 * @property {() => Promise<void>} close
 */

/**
 * Serves `/metrics` and `/health` on `address`. Never throws for a port that cannot be bound: logs it
 * (naming the address and the cause) and counts it.
 * @param {{address: string, metrics: IngestMetrics, log?: import('./log.js').Log}} o
 * @returns {Promise<MetricsServer>}
 */
export async function startMetricsServer ({ address, metrics, log = silentLog }) {
  const { host, port } = parseAddress(address)
  const server = createServer((req, res) => { handle(req, res, metrics).catch(() => { res.statusCode = 500; res.end() }) })
  server.keepAliveTimeout = 1000
  const result = /** @type {MetricsServer} */ ({ address: null, bindErrors: 0, close: async () => {} })
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { server.off('error', reject); resolve(undefined) })
    })
  } catch (e) {
    result.bindErrors++
    log(`metrics: cannot listen on ${address}: ${/** @type {any} */ (e)?.code ?? ''} ${/** @type {any} */ (e)?.message ?? e} (counted in the summary's metrics.bind_errors); going on without metrics`)
    return result
  }
  server.unref()
  const bound = /** @type {import('node:net').AddressInfo} */ (server.address())
  result.address = hostPort(bound.address, bound.port)
  result.close = () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections?.() })
  log(`metrics: /metrics and /health on http://${result.address}`)
  return result
}

/** @param {import('node:http').IncomingMessage} req @param {import('node:http').ServerResponse} res @param {IngestMetrics} metrics */
async function handle (req, res, metrics) {
  const path = (req.url ?? '/').split('?')[0]
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end()
  } else if (path === '/metrics') {
    const body = await metrics.registry.metrics()
    res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(req.method === 'HEAD' ? undefined : body)
  } else if (path === '/health') {
    const h = metrics.health()
    const { ok, ...body } = h
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(req.method === 'HEAD' ? undefined : JSON.stringify(body))
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: /metrics or /health\n')
  }
}
