// A stand-in exchange for live-mode tests: the ingester's replay server on its own, playing recorded raw
// frames to whoever connects (tardis-dev's real-time client, pointed here with WSS_URL_<EXCHANGE>).
// usage: node replay_server.mjs <exchange> <speed|max> <file>...   prints {"url": ...}, later {"done": ...}
import { startReplayServer } from '../../ingest-node/src/replay/server.js'
import { readRecording } from '../../ingest-node/src/replay/recording.js'

const [exchange, speed, ...files] = process.argv.slice(2)
const server = await startReplayServer({
  exchange,
  recording: readRecording(files),
  speed: speed === 'max' ? 'max' : Number(speed),
  log: (line) => process.stderr.write(`replay-server: ${line}\n`)
})
process.stdout.write(JSON.stringify({ url: server.url }) + '\n')
await server.done
process.stdout.write(JSON.stringify({ done: true, stats: server.stats }) + '\n')
process.on('SIGTERM', () => server.close().then(() => process.exit(0)))
