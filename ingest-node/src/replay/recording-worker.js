// The reading thread of readRecordingBatches (recording.js): reads, decompresses and splits a file into
// pieces of lines (readLinePieces) and finds where the quick lines' JSON starts (quickStamps), so that
// the replay's own thread only decodes and parses. Asked for one file at a time ({file, credit}); sends a
// piece per credit (given back a few at a time as pieces are taken), then {done: true}, or {error} when
// the file cannot be read (after the pieces before the failure).
import { parentPort } from 'node:worker_threads'
import { isAscii } from 'node:buffer'
import { readLinePieces, quickStamps } from './recording.js'

let credit = 0
/** @type {(() => void)|null} */
let wake = null

parentPort.on('message', (m) => {
  if (m.file !== undefined) {
    credit = m.credit
    read(m.file)
  } else {
    credit += m.credit
  }
  if (wake !== null) { const w = wake; wake = null; w() }
})

/** @param {string} file */
async function read (file) {
  try {
    for await (const piece of readLinePieces(file)) {
      while (credit === 0) await new Promise((resolve) => { wake = () => resolve(undefined) })
      credit--
      const { jsonAt, tsUs } = quickStamps(piece)
      const { bytes, n, starts, ends } = piece
      parentPort.postMessage({ bytes, n, starts, ends, ascii: isAscii(bytes), jsonAt, tsUs },
        [bytes.buffer, starts.buffer, ends.buffer, jsonAt.buffer, tsUs.buffer])
    }
    parentPort.postMessage({ done: true })
  } catch (e) {
    parentPort.postMessage({ error: e?.message ?? String(e) })
  }
}
