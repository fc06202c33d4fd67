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

/** Each template split at its holes: literal bytes, a hole, ..., a hole, literal bytes. */
const COMPILED = TEMPLATES.map(({ text }) => ({
  literals: text.split(/%[sib]/).map((l) => Buffer.from(l, 'latin1')),
  kinds: /** @type {HoleKind[]} */ ([...text.matchAll(/%([sib])/g)].map((m) => m[1]))
}))
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
      if (matches(COMPILED[t], bytes, jsonAt[k], ends[k], k * MAX_HOLES, from, to, value)) {
        which[k] = t
        break
      }
    }
  }
  return { which, from, to, value }
}

/**
 * Whether bytes[p, end) is the template's text; its holes noted from index `base` on.
 * @param {{literals: Uint8Array[], kinds: HoleKind[]}} template
 * @param {Uint8Array} bytes @param {number} p @param {number} end @param {number} base
 * @param {Int32Array} from @param {Int32Array} to @param {Float64Array} value
 */
function matches ({ literals, kinds }, bytes, p, end, base, from, to, value) {
  for (let h = 0; ; h++) {
    const lit = literals[h]
    if (p + lit.length > end) return false
    for (let j = 0; j < lit.length; j++) if (bytes[p + j] !== lit[j]) return false
    p += lit.length
    if (h === kinds.length) return p === end
    const kind = kinds[h]
    from[base + h] = p
    if (kind === 's') {
      // up to the closing quote: printable ASCII, no escape
      for (;; p++) {
        if (p >= end) return false
        const c = bytes[p]
        if (c === 34) break
        if (c < 0x20 || c > 0x7e || c === 92) return false
      }
      to[base + h] = p
    } else if (kind === 'i') {
      // 0, or up to 15 digits not starting with 0
      let v = bytes[p] - 48
      if (v < 0 || v > 9) return false
      p++
      if (v !== 0) {
        for (let d = bytes[p] - 48; p < end && d >= 0 && d <= 9; d = bytes[++p] - 48) v = v * 10 + d
        if (p - from[base + h] > 15) return false
      }
      value[base + h] = v
    } else if (bytes[p] === 116 && bytes[p + 1] === 114 && bytes[p + 2] === 117 && bytes[p + 3] === 101) { // true
      value[base + h] = 1
      p += 4
    } else if (bytes[p] === 102 && bytes[p + 1] === 97 && bytes[p + 2] === 108 && bytes[p + 3] === 115 && bytes[p + 4] === 101) { // false
      value[base + h] = 0
      p += 5
    } else {
      return false
    }
  }
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

