// The README's flag table of `shoal agent` is the flag table of src/agent/config.ts, written
// out by `npm run readme:flags`: they cannot drift apart.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { AGENT_FLAGS } from '../src/agent/config.js'
import { markdownTable } from '../src/flags.js'

t.test('README agent flag table matches the flag table', async (t) => {
  const readme = readFileSync('README.md', 'utf8')
  const m = /<!-- agent-flags:begin[^>]*-->\n([\s\S]*?)\n<!-- agent-flags:end -->/.exec(readme)
  t.ok(m, 'README.md has the agent-flags block')
  t.equal(m?.[1], markdownTable(AGENT_FLAGS), 'the block is what `npm run readme:flags` writes')
})
