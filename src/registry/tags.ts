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
import { unsafeChar } from '../text.js'

/** An attribute key: lower case letters, digits, `_`, `.` and `-`, a letter or digit first. */
export const ATTRIBUTE_KEY = /^[a-z0-9][a-z0-9_.-]*$/

/**
 * Why `tag` cannot be a tag, or undefined when it can: not empty, no white space around it, no
 * character free text may not hold (control and bidi characters: src/text.ts, the rule a drain
 * reason and a check's output follow too; a tag reaches the same logs, DNS names and the UI). Its length is a record limit (128 characters).
 *
 * @example
 *   tagProblem('canary')     // undefined
 *   tagProblem(' canary')    // 'has white space around it'
 */
export function tagProblem(tag: string): string | undefined {
  if (tag === '') return 'is empty'
  if (tag.trim() !== tag) return 'has white space around it'
  const u = unsafeChar(tag)
  if (u) return `holds ${u.codePoint}, a control or bidi character (src/text.ts)`
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
