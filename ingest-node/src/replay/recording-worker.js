// The reading thread of readRecordingBatches (recording.js): reads, decompresses and splits a file into
// pieces of lines (readLinePieces) and finds where the quick lines' JSON starts (quickStamps), so that
// the replay's own thread only decodes and parses. Asked for one file at a time ({file}); sends its
// pieces, at most `ahead` more than the replay's thread has taken (`taken`, shared), then {done: true},
// or {error} when the file cannot be read (after the pieces before the failure).
import { parentPort, workerData } from 'node:worker_threads'
import { isAscii } from 'node:buffer'
import { readLinePieces, quickStamps } from './recording.js'
import { scanTemplates } from './frames.js'

/** @type {{taken: Int32Array, ahead: number}} */
const { taken, ahead } = workerData

parentPort.on('message', (m) => { read(m.file) })

/** @param {string} file */
async function read (file) {
  let sent = 0
  try {
    for await (const piece of readLinePieces(file)) {
      for (let t = Atomics.load(taken, 0); sent - t >= ahead; t = Atomics.load(taken, 0)) {
        await Atomics.waitAsync(taken, 0, t).value
      }
      sent++
      const { jsonAt, tsUs } = quickStamps(piece)
      const { bytes, n, starts, ends } = piece
      const ascii = isAscii(bytes)
      const scan = ascii ? scanTemplates(bytes, jsonAt, ends, n) : null
      const transfer = [bytes.buffer, starts.buffer, ends.buffer, jsonAt.buffer, tsUs.buffer]
      if (scan !== null) transfer.push(scan.which.buffer, scan.from.buffer, scan.to.buffer, scan.value.buffer)
      parentPort.postMessage({ bytes, n, starts, ends, ascii, jsonAt, tsUs, scan }, transfer)
    }
    parentPort.postMessage({ done: true })
  } catch (e) {
    parentPort.postMessage({ error: e?.message ?? String(e) })
  }
}
