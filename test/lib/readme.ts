/**
 * The README's shell blocks and the marker on the line before each (docs/style.md, "README
 * commands"): `<!-- runnable -->`, `<!-- runnable: background -->` or `<!-- needs: WHAT -->`.
 *
 * @example
 *   shellBlocks(readFileSync('README.md', 'utf8')).filter((b) => b.marker === 'runnable')
 */

/** What a `needs:` block may name; each is something this machine's tests cannot provide. */
export const NEEDS = ['npm registry', 'docker', 'swarm', 'envoy', 'a gRPC client', 'other hosts', 'root']

export interface Block {
  line: number
  marker: 'runnable' | 'background' | 'needs' | undefined
  needs?: string
  text: string
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
