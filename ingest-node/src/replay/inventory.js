// What a recording holds that tardis-dev's feed needs besides the subscribed streams (Binance: a depth
// snapshot per symbol for book data), found before the replay starts by the exchange protocol's
// optional `scanRecording` (exchanges/*.js). The scan is asynchronous (it streams the files and stops
// early); scanRecordingSync runs it in a worker and waits for it, so that a source can settle the data
// types it streams when it is opened (the start frame lists them before the first message is pulled).
import { Worker, MessageChannel, receiveMessageOnPort } from 'node:worker_threads'
import { protocolFor } from './exchanges/index.js'
import { readLineBatches } from './recording.js'

/**
 * @typedef {object} ScanRequest
 * @property {string[]} symbols
 * @property {string[]} dataTypes requested data types
 *
 * @typedef {object} ScanResult
 * @property {{type: string, reason: string}[]} unavailable data types the recording cannot feed, and why
 * @property {any} inventory what the protocol found (passed to its createRecordingState)
 */

/**
 * Whether the protocol of `exchange` has to scan a recording before streaming these data types.
 * @param {string} exchange
 * @param {string[]} dataTypes
 */
export function needsScan (exchange, dataTypes) {
  const p = protocolFor(exchange)
  return typeof p.scanRecording === 'function' && dataTypes.some((t) => (p.scannedTypes ?? []).includes(t))
}

/**
 * Lines of the files, back to back, with their file and 1-based line number; with `keep`, only the lines
 * it keeps (tested a batch at a time, without a turn of the generator per line).
 * @param {string[]} files
 * @param {((text: string) => boolean) | null} [keep]
 * @returns {AsyncGenerator<{file: string, line: number, text: string}>}
 */
export async function * numberedLines (files, keep = null) {
  for (const file of files) {
    let line = 0
    for await (const batch of readLineBatches(file)) {
      for (const text of batch) {
        line++
        if (keep === null || keep(text)) yield { file, line, text }
      }
    }
  }
}

/**
 * @param {string} exchange
 * @param {string[]} files
 * @param {ScanRequest} request
 * @returns {Promise<ScanResult>}
 */
export async function scanRecording (exchange, files, request) {
  const p = protocolFor(exchange)
  if (typeof p.scanRecording !== 'function') return { unavailable: [], inventory: null }
  return p.scanRecording(numberedLines(files, p.scanLine ?? null), request)
}

/**
 * scanRecording in a worker thread, waited for synchronously.
 * @param {string} exchange
 * @param {string[]} files
 * @param {ScanRequest} request
 * @param {{timeoutMs?: number}} [options]
 * @returns {ScanResult}
 */
export function scanRecordingSync (exchange, files, request, { timeoutMs = 10 * 60 * 1000 } = {}) {
  const { port1, port2 } = new MessageChannel()
  const flag = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(new URL('./inventory-worker.js', import.meta.url), {
    workerData: { exchange, files, request, port: port2, flag },
    transferList: [port2]
  })
  worker.unref()
  try {
    if (Atomics.wait(flag, 0, 0, timeoutMs) === 'timed-out') {
      throw new Error(`recording scan: no answer within ${timeoutMs} ms`)
    }
    const reply = receiveMessageOnPort(port1)?.message
    if (reply === undefined) throw new Error('recording scan: the worker sent no answer')
    if (reply.error !== undefined) throw new Error(reply.error)
    return reply.result
  } finally {
    port1.close()
    worker.terminate().catch(() => {})
  }
}
