// Live normalized data straight from the exchange's public WebSocket through tardis-dev (no API key).
import { tardisStream } from './tardis-stream.js'

/**
 * @param {import('./tardis-stream.js').TardisStreamOptions} options
 */
export function openTardisRealtime (options) {
  return tardisStream({ label: 'tardis-realtime', ...options })
}
