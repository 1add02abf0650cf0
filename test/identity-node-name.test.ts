// One node name rule (src/text.ts nodeNameProblem) for every command that takes a node name:
// `shoal agent --node` (agent/config.ts) and `shoal ca intermediate --node` (identity/ca.ts),
// which had a regex of its own. Over seeded names around the rule's edges (length 128, a
// first character that is not a letter or digit, characters outside [A-Za-z0-9._-], control
// and bidi characters), both accept exactly the names the rule accepts, refuse the others with
// the rule's words, and quote the name so that the message holds no character free text may
// not carry (a newline in a name forged a second line of the error).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseAgentConfig } from '../src/agent/config.js'
import { isShoalError } from '../src/errors.js'
import { makeIntermediate } from '../src/identity/index.js'
import { NODE_NAME_MAX, nodeNameProblem, unsafeChar } from '../src/text.js'
import { RecordLimits } from '../src/registry/limits.js'
import { seeded } from './lib/random.js'

const seeds = process.env.SHOAL_PROPERTY_SEED ? [Number(process.env.SHOAL_PROPERTY_SEED)] : [1, 2, 3]
const GOOD = 'abcXYZ0189._-'
const BAD = ' /:@+*é\u00a0\n\r\t\u001b\u007f\u0085\u202e\u2066\u200f'

t.test('the node name limit is the registry record limit for a host', async (t) => {
  t.equal(RecordLimits.host.build, NODE_NAME_MAX)
})

for (const seed of seeds) {
  t.test(`seed ${seed}: the agent and the CA tooling apply the one node name rule`, async (t) => {
    const random = seeded(seed)
    const pick = (chars: string): string => chars[Math.floor(random() * chars.length)]!
    const dir = mkdtempSync(join(tmpdir(), 'shoal-node-name-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const names = ['a', '-a', '.a', 'a'.repeat(NODE_NAME_MAX), 'a'.repeat(NODE_NAME_MAX + 1), 'a\nb', 'a\u202eb']
    for (let i = 0; i < 60; i++) {
      const len = [1, 2, 8, NODE_NAME_MAX - 1, NODE_NAME_MAX, NODE_NAME_MAX + 1][Math.floor(random() * 6)]!
      let name = ''
      for (let k = 0; k < len; k++) name += random() < 0.9 ? pick(GOOD) : pick(BAD)
      names.push(name)
    }
    const wrong: string[] = []
    for (const name of names) {
      const problem = nodeNameProblem(name)
      // Agent: the configuration is refused exactly when the rule finds a problem.
      let agentErr: unknown
      try {
        parseAgentConfig([`--node=${name}`, '--discovery', 'none'], {})
      } catch (err) {
        agentErr = err
      }
      // CA: a valid name gets past the name check to the (missing) root; an invalid one does not.
      const caErr = await makeIntermediate({ node: name, caDir: join(dir, 'no-root'), outDir: join(dir, 'out') }).then(
        () => undefined,
        (err: unknown) => err,
      )
      const refusedByName = (err: unknown) =>
        isShoalError(err, 'SHOAL_ERR_CONFIG') && (err as Error).message.includes('is not a valid node name')
      for (const [who, err] of [
        ['shoal agent', agentErr],
        ['shoal ca intermediate', caErr],
      ] as const) {
        const msg = err instanceof Error ? err.message : ''
        if (refusedByName(err) !== (problem !== undefined))
          wrong.push(`${who} ${JSON.stringify(name)}: rule says ${problem ?? 'valid'}, got ${msg}`)
        else if (problem !== undefined && !msg.includes(problem))
          wrong.push(`${who} ${JSON.stringify(name)}: message lacks the rule's words: ${msg}`)
        else if (problem !== undefined && unsafeChar(msg) !== undefined)
          wrong.push(`${who} ${JSON.stringify(name)}: message holds ${unsafeChar(msg)!.codePoint}: ${JSON.stringify(msg)}`)
      }
    }
    t.same(wrong, [], `${names.length} names`)
  })
}
