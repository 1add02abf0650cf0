/**
 * What a tag and an attribute are (README "Tags and attributes"): the one rule that every
 * source (Docker labels and environment, the static file) and the owner's fit (fit.ts) apply.
 * How long and how many are record limits (limits.ts `tag`, `tags`, `attributeKey`, ...).
 *
 * Tags and attributes are Registrator's `Tags` and `Attrs` (gliderlabs/registrator,
 * docs/user/services.md): free-form strings that classify an instance. Shoal keeps what any
 * consumer can carry as it is: a tag or a value goes into DNS names (`TAG.NAME.service`),
 * Envoy metadata (a protobuf Struct) and the UI unchanged.
 */

/** Whether `s` holds a C0 control character or DEL: they would break log lines, DNS presentation format and the UI. */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return true
  }
  return false
}

/** An attribute key: lower case letters, digits, `_`, `.` and `-`, a letter or digit first. */
export const ATTRIBUTE_KEY = /^[a-z0-9][a-z0-9_.-]*$/

/**
 * Why `tag` cannot be a tag, or undefined when it can: not empty, no white space around it, no
 * control character. Its length is a record limit (128 characters).
 *
 * @example
 *   tagProblem('canary')     // undefined
 *   tagProblem(' canary')    // 'has white space around it'
 */
export function tagProblem(tag: string): string | undefined {
  if (tag === '') return 'is empty'
  if (tag.trim() !== tag) return 'has white space around it'
  if (hasControl(tag)) return 'holds a control character'
  return undefined
}

/**
 * Why `key` cannot be an attribute key, or undefined when it can: [a-z0-9_.-], a letter or
 * digit first. Its length is a record limit (64 characters).
 *
 * @example
 *   attributeKeyProblem('region')   // undefined
 *   attributeKeyProblem('Region')   // 'is not lower-case letters, digits, _ . - (a letter or digit first)'
 */
export function attributeKeyProblem(key: string): string | undefined {
  if (key === '') return 'is empty'
  if (!ATTRIBUTE_KEY.test(key)) return 'is not lower-case letters, digits, _ . - (a letter or digit first)'
  return undefined
}
