// Frames read without JSON.parse: the ones that make up most of a trades replay (Binance's spot and
// futures `<sym>@trade` frames). JSON.parse of them was half of the replay thread's time.
//
// A template is a frame's text with holes. The reading thread matches each line's bytes against the
// templates (scanTemplates) and notes where each hole's value is; the replay's thread makes the object
// from those notes (templatedFrame), for a fraction of JSON.parse's cost on that thread. A template
// gives exactly the object JSON.parse gives, or nothing: it matches only text with no whitespace,
// strings of printable ASCII with no escape, integers of at most 15 digits without a sign or leading
// zero (so their value is exact, as JSON.parse's), and the frame's own keys in their order. Any other
// line (another frame, a field more or less, a float, a null, ...) is left to JSON.parse, so an invalid
// frame still fails as JSON.parse fails it.

/** @typedef {'s'|'i'|'b'} HoleKind a JSON string, integer, boolean */

/**
 * @typedef {object} Template
 * @property {string} text the frame's text, `%s`/`%i`/`%b` where a string/integer/boolean is
 * @property {(v: any[]) => any} make the object from the holes' values, keys in the text's order
 */

/** @type {Template[]} */
const TEMPLATES = [
  { // Binance spot
    text: '{"stream":"%s","data":{"e":"trade","E":%i,"s":"%s","t":%i,"p":"%s","q":"%s","T":%i,"m":%b,"M":%b}}',
    make: (v) => ({ stream: v[0], data: { e: 'trade', E: v[1], s: v[2], t: v[3], p: v[4], q: v[5], T: v[6], m: v[7], M: v[8] } })
  },
  { // Binance USDⓈ-M and COIN-M futures
    text: '{"stream":"%s","data":{"e":"trade","E":%i,"T":%i,"s":"%s","t":%i,"p":"%s","q":"%s","X":"%s","m":%b}}',
    make: (v) => ({ stream: v[0], data: { e: 'trade', E: v[1], T: v[2], s: v[3], t: v[4], p: v[5], q: v[6], X: v[7], m: v[8] } })
  }
]

/**
 * A template's text cut at its holes: literals[0], hole 0, literals[1], ..., hole n-1, literals[n].
 * @param {string} text
 */
const partsOf = (text) => ({
  literals: text.split(/%[sib]/),
  kinds: /** @type {HoleKind[]} */ ([...text.matchAll(/%([sib])/g)].map((m) => m[1]))
})

/**
 * The source of a template's matcher `(b, p, end, base, from, to, value) => boolean`: whether bytes
 * b[p, end) are the template's text, its holes noted from index `base` on (TemplateScan). Compiled, as
 * convert.js compiles its row writers: the literal bytes compared one by one in straight-line code run
 * three times faster than a loop over the template's parts (0.18 against 0.51 µs a trade frame).
 * @param {{literals: string[], kinds: HoleKind[]}} parts
 */
function matcherSource ({ literals, kinds }) {
  const lines = ['let c, v']
  literals.forEach((literal, h) => {
    const bytes = [...Buffer.from(literal, 'latin1')]
    lines.push(`if (p + ${bytes.length} > end${bytes.map((byte, j) => ` || b[p + ${j}] !== ${byte}`).join('')}) return false`, `p += ${bytes.length}`)
    if (h === kinds.length) {
      lines.push('return p === end')
      return
    }
    lines.push(`from[base + ${h}] = p`)
    if (kinds[h] === 's') {
      // up to the closing quote: printable ASCII, no escape
      lines.push('for (;; p++) { if (p >= end) return false; c = b[p]; if (c === 34) break; if (c < 0x20 || c > 0x7e || c === 92) return false }',
        `to[base + ${h}] = p`)
    } else if (kinds[h] === 'i') {
      // 0, or up to 15 digits not starting with 0
      lines.push('v = b[p] - 48; if (v < 0 || v > 9) return false; p++',
        `if (v !== 0) { for (c = b[p] - 48; p < end && c >= 0 && c <= 9; c = b[++p] - 48) v = v * 10 + c; if (p - from[base + ${h}] > 15) return false }`,
        `value[base + ${h}] = v`)
    } else {
      lines.push(`if (b[p] === 116 && b[p + 1] === 114 && b[p + 2] === 117 && b[p + 3] === 101) { value[base + ${h}] = 1; p += 4 }`, // true
        `else if (b[p] === 102 && b[p + 1] === 97 && b[p + 2] === 108 && b[p + 3] === 115 && b[p + 4] === 101) { value[base + ${h}] = 0; p += 5 }`, // false
        'else return false')
    }
  })
  return lines.join('\n')
}

/** Each template's hole kinds and its compiled matcher. */
const COMPILED = TEMPLATES.map(({ text }) => {
  const parts = partsOf(text)
  // eslint-disable-next-line no-new-func
  const matches = new Function('b', 'p', 'end', 'base', 'from', 'to', 'value', matcherSource(parts))
  return {
    kinds: parts.kinds,
    matches: /** @type {(b: Uint8Array, p: number, end: number, base: number, from: Int32Array, to: Int32Array, value: Float64Array) => boolean} */ (matches)
  }
})
/** Holes of the template with the most. */
const MAX_HOLES = Math.max(...COMPILED.map((c) => c.kinds.length))

/**
 * The templates of a piece's lines: line k has template `which[k]` (-1: none); the characters of its
 * string hole h are bytes[from[k * MAX_HOLES + h], to[...]), the value of an integer or boolean hole
 * (1 = true) is value[...].
 * @typedef {object} TemplateScan
 * @property {Int8Array} which
 * @property {Int32Array} from
 * @property {Int32Array} to
 * @property {Float64Array} value
 */

/**
 * Matches the JSON of each line of an ASCII piece (bytes[jsonAt[k], ends[k]); jsonAt -1: none found)
 * against the templates. Runs in the reading thread (recording-worker.js).
 * @param {Uint8Array} bytes @param {Int32Array} jsonAt @param {Int32Array} ends @param {number} n
 * @returns {TemplateScan}
 */
export function scanTemplates (bytes, jsonAt, ends, n) {
  const which = new Int8Array(n).fill(-1)
  const from = new Int32Array(n * MAX_HOLES)
  const to = new Int32Array(n * MAX_HOLES)
  const value = new Float64Array(n * MAX_HOLES)
  for (let k = 0; k < n; k++) {
    if (jsonAt[k] === -1) continue
    for (let t = 0; t < COMPILED.length; t++) {
      if (COMPILED[t].matches(bytes, jsonAt[k], ends[k], k * MAX_HOLES, from, to, value)) {
        which[k] = t
        break
      }
    }
  }
  return { which, from, to, value }
}

/** A line's hole values (reused: `make` copies them into the object it makes). */
const holes = new Array(MAX_HOLES)

/**
 * The object of line k of a piece, which scanTemplates matched (scan.which[k] !== -1): the value
 * JSON.parse gives its text.
 * @param {TemplateScan} scan
 * @param {number} k
 * @param {(s: number, e: number) => string} text the piece's text of bytes[s, e)
 */
export function templatedFrame (scan, k, text) {
  const { kinds } = COMPILED[scan.which[k]]
  const base = k * MAX_HOLES
  for (let h = 0; h < kinds.length; h++) {
    const kind = kinds[h]
    holes[h] = kind === 's' ? text(scan.from[base + h], scan.to[base + h]) : kind === 'i' ? scan.value[base + h] : scan.value[base + h] === 1
  }
  return TEMPLATES[scan.which[k]].make(holes)
}

