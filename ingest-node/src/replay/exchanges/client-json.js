// A client's WebSocket message as JSON; one that is not JSON gets the exchange's own error reply and is
// reported as a problem (counted by the replay server).

/**
 * @param {string} text
 * @param {string} badJsonReply what the exchange answers to a message that is not JSON
 * @returns {{msg: any, invalid: null} | {msg: null, invalid: {replies: string[], problem: string}}}
 */
export function parseClientJson (text, badJsonReply) {
  try {
    return { msg: JSON.parse(text), invalid: null }
  } catch {
    return { msg: null, invalid: { replies: [badJsonReply], problem: `not JSON: ${text.slice(0, 80)}` } }
  }
}
