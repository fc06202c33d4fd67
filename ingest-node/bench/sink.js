// A counting sink: ZeroMQ PULL that binds, reads frame headers (and with --decode the full frames),
// counts rows per type, and prints one JSON line to stdout when the end frame arrives.
// usage: node bench/sink.js tcp://127.0.0.1:5557 [--decode]
import { Pull } from 'zeromq'
import { decodeFrame } from '../src/wire/index.js'

const endpoint = process.argv[2] ?? 'tcp://127.0.0.1:5557'
const decode = process.argv.includes('--decode')
const sock = new Pull({ receiveHighWaterMark: 4 })
await sock.bind(endpoint)
process.stdout.write(JSON.stringify({ ready: endpoint }) + '\n')
const rows = {}
let frames = 0
let bytes = 0
let first = null
let lastSeq = -1
let gaps = 0
for await (const [msg] of sock) {
  if (first === null) first = performance.now()
  frames++
  bytes += msg.length
  let header
  if (decode) {
    header = decodeFrame(msg).header
  } else {
    const h = msg.readUInt32LE(8)
    header = JSON.parse(msg.toString('utf8', 12, 12 + h))
  }
  if (header.seq !== lastSeq + 1) gaps++
  lastSeq = header.seq
  rows[header.type] = (rows[header.type] ?? 0) + header.n
  if (header.type === 'end') {
    const seconds = (performance.now() - first) / 1000
    process.stdout.write(JSON.stringify({ frames, bytes, rows, gaps, seconds, end: header }) + '\n')
    break
  }
}
sock.close()
