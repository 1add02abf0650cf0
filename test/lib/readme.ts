/**
 * The README's shell blocks and the marker on the line before each (docs/style.md, "README
 * commands"): `<!-- runnable -->`, `<!-- runnable: background -->` or `<!-- needs: WHAT -->`.
 *
 * @example
 *   shellBlocks(readFileSync('README.md', 'utf8')).filter((b) => b.marker === 'runnable')
 */

/** What a `needs:` block may name; each is something this machine's tests cannot provide. */
export const NEEDS = ['npm registry', 'docker', 'swarm', 'envoy', 'other hosts', 'root']

export interface Block {
  line: number
  marker: 'runnable' | 'background' | 'needs' | undefined
  needs?: string
  text: string
}

/** A code block the README gives as a file: `<!-- file: NAME -->` on the line before it. */
export interface FileBlock {
  line: number
  name: string
  text: string
}

/**
 * The code blocks of a Markdown text marked `<!-- file: NAME -->` (any language): the files an
 * example's commands use, which test/readme-commands.test.ts writes before it runs them.
 */
export function fileBlocks(markdown: string): FileBlock[] {
  const lines = markdown.split('\n')
  const files: FileBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^```\w*\s*$/.test(lines[i]!) || lines[i] === '```') continue
    let end = i + 1
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++
    let j = i - 1
    while (j >= 0 && lines[j]!.trim() === '') j--
    const m = /^<!--\s*file:\s*([A-Za-z0-9._-]+)\s*-->$/.exec(lines[j]?.trim() ?? '')
    if (m) files.push({ line: i + 1, name: m[1]!, text: lines.slice(i + 1, end).join('\n') + '\n' })
    i = end
  }
  return files
}

/** The shell blocks of a Markdown text with the marker on the line before each. */
export function shellBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!)
    if (!open) continue
    let end = i + 1
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++
    if (['sh', 'bash', 'shell', 'console'].includes(open[1]!)) {
      let j = i - 1
      while (j >= 0 && lines[j]!.trim() === '') j--
      const m = /^<!--\s*(runnable|runnable:\s*background|needs:\s*(.+?))\s*-->$/.exec(lines[j]?.trim() ?? '')
      const marker = !m ? undefined : m[1] === 'runnable' ? 'runnable' : m[1]!.startsWith('runnable') ? 'background' : 'needs'
      blocks.push({ line: i + 1, marker, ...(m?.[2] ? { needs: m[2] } : {}), text: lines.slice(i + 1, end).join('\n') })
    }
    i = end
  }
  return blocks
}

/**
 * A JSON shape as the README writes one in its HTTP API table: `{a, b?, c: {d}, e: [{f}]}`.
 * A key with `?` may be absent; a key without `:` may hold anything; `[SHAPE]` is an array
 * whose every element has SHAPE.
 */
export type Shape = { kind: 'object'; keys: Map<string, { optional: boolean; shape?: Shape }> } | { kind: 'array'; of: Shape }

/** Parses a shape (see Shape); throws naming the position of what it cannot read. */
export function parseShape(text: string): Shape {
  let i = 0
  const space = () => {
    while (/\s/.test(text[i] ?? '')) i++
  }
  const expect = (c: string) => {
    space()
    if (text[i] !== c) throw new Error(`shape ${JSON.stringify(text)}: expected "${c}" at ${i}, found "${text[i] ?? 'the end'}"`)
    i++
  }
  const value = (): Shape => {
    space()
    if (text[i] === '[') {
      i++
      const of = value()
      expect(']')
      return { kind: 'array', of }
    }
    expect('{')
    const keys = new Map<string, { optional: boolean; shape?: Shape }>()
    for (;;) {
      space()
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))
      if (!m) throw new Error(`shape ${JSON.stringify(text)}: expected a key at ${i}`)
      i += m[0].length
      const optional = text[i] === '?'
      if (optional) i++
      space()
      let shape: Shape | undefined
      if (text[i] === ':') {
        i++
        shape = value()
        space()
      }
      keys.set(m[0], { optional, ...(shape ? { shape } : {}) })
      if (text[i] === ',') {
        i++
        continue
      }
      expect('}')
      return { kind: 'object', keys }
    }
  }
  const s = value()
  space()
  if (i !== text.length) throw new Error(`shape ${JSON.stringify(text)}: text after the shape at ${i}`)
  return s
}

/** Where `value` departs from `shape`: one line per difference, with its path (`clients.clients[0].types`). */
export function shapeProblems(shape: Shape, value: unknown, path = '$'): string[] {
  if (shape.kind === 'array') {
    if (!Array.isArray(value)) return [`${path}: an array in the README, ${JSON.stringify(value)?.slice(0, 80)} in the answer`]
    return value.flatMap((v, k) => shapeProblems(shape.of, v, `${path}[${k}]`))
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return [`${path}: an object in the README, ${JSON.stringify(value)?.slice(0, 80)} in the answer`]
  const out: string[] = []
  const got = value as Record<string, unknown>
  for (const [k, spec] of shape.keys) {
    if (!(k in got)) {
      if (!spec.optional) out.push(`${path}.${k}: in the README, not in the answer`)
    } else if (spec.shape) out.push(...shapeProblems(spec.shape, got[k], `${path}.${k}`))
  }
  for (const k of Object.keys(got)) if (!shape.keys.has(k)) out.push(`${path}.${k}: in the answer, not in the README`)
  return out
}
