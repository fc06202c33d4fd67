// Worker of scanRecordingSync (inventory.js): scans, posts the result, then wakes the waiting thread.
import { workerData } from 'node:worker_threads'
import { scanRecording } from './inventory.js'

const { exchange, files, request, port, flag } = workerData
try {
  port.postMessage({ result: await scanRecording(exchange, files, request) })
} catch (e) {
  port.postMessage({ error: e?.message ?? String(e) })
} finally {
  Atomics.store(flag, 0, 1)
  Atomics.notify(flag, 0)
}
