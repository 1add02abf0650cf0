/**
 * Text from outside (a drain reason a client sends, a check's output) ends up in log lines,
 * the gossiped record's detail, the UI and `shoal` tables. Control characters (C0, DEL, C1: a newline forges a
 * log line, ESC drives a terminal), line and paragraph separators, and the Unicode bidi
 * controls (UAX #9: embeddings, overrides, isolates and marks, the "Trojan Source" trick,
 * CVE-2021-42574) would let that text pretend to be something else: the HTTP API refuses a
 * reason holding one (unsafeChar), and a check's output is shown with them masked (maskUnsafe).
 */

/** C0, DEL, C1; U+2028/U+2029; U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u

/**
 * The first character of `text` that free text may not hold, as `U+XXXX` with its index,
 * or undefined when there is none.
 *
 * @example
 *   unsafeChar('ok\n[01:00] ERROR') // { index: 2, codePoint: 'U+000A' }
 */
export function unsafeChar(text: string): { index: number; codePoint: string } | undefined {
  const m = UNSAFE.exec(text)
  if (!m) return undefined
  return { index: m.index, codePoint: `U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}` }
}

/**
 * `text` as a JSON string literal with every character unsafeChar refuses written `\uXXXX`
 * (JSON.stringify escapes only C0, not DEL, C1 or the bidi controls): for quoting a client's
 * input in an error message or log line.
 */
export function quoteText(text: string): string {
  return JSON.stringify(text).replace(new RegExp(UNSAFE.source, 'gu'), (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`)
}

/**
 * `text` with every character unsafeChar finds written `?`, bar tab and newline: for text shown
 * as it came, in lines (a check's output).
 *
 * @example
 *   maskUnsafe('ok\u001b[2J\tdone\u202e') // 'ok?[2J\tdone?'
 */
export function maskUnsafe(text: string): string {
  return text.replace(new RegExp(UNSAFE.source, 'gu'), (c) => (c === '\t' || c === '\n' ? c : '?'))
}

/** The longest node name, in characters (README "Known limits"; the registry's `RecordLimits.host.build`). */
export const NODE_NAME_MAX = 128

const NODE_NAME_RE = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${NODE_NAME_MAX - 1}}$`)

/**
 * The node name rule, the one check of a node name wherever one is taken (`shoal agent --node`,
 * `shoal ca intermediate --node`): 1 to NODE_NAME_MAX characters of [A-Za-z0-9._-], the first a
 * letter or a digit, so that it fits a record, a SPIFFE ID path (`spiffe://TD/node/NAME`) and a
 * file name. Here on the ground floor because the registry and the identity tooling, which may
 * not import each other, both apply it. Returns what is wrong, for an error that names the
 * input, or undefined when `name` is valid.
 *
 * @example
 *   nodeNameProblem('host-a')  // undefined
 *   nodeNameProblem('-a')      // 'is not a valid node name ([A-Za-z0-9._-], up to 128)'
 */
export function nodeNameProblem(name: string): string | undefined {
  return NODE_NAME_RE.test(name) ? undefined : `is not a valid node name ([A-Za-z0-9._-], up to ${NODE_NAME_MAX})`
}
