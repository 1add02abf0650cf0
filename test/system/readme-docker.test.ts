// Issue "Say why", item 9: the README's `docker run ... nginx` example becomes healthy. The command
// is taken from the README as written; only the image is swapped, because no image can be pulled
// here: the test image's busybox httpd stands in for nginx (it too listens on port 80 and
// answers `/`). A real agent with Docker discovery on a private dockerd must list `web` on
// ServicePort 10001 as alive.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Agent } from '../../src/agent/agent.js'
import { parseAgentConfig } from '../../src/agent/config.js'
import { splitArgv } from '../../src/health/template.js'
import { silentLogger } from '../../src/log.js'
import { REPO_ROOT } from '../lib/cli.js'
import { shellBlocks } from '../lib/readme.js'
import { IMAGE, startDockerd, waitFor } from './dockerd.js'
import { LOOPBACK_AGENT_FLAGS } from '../lib/agent-process.js'

t.test("the README's docker run example turns healthy", async (t) => {
  const block = shellBlocks(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')).find((b) => /^docker run .*ServiceName=web/s.test(b.text))
  t.ok(block, 'the README has the example')
  if (!block) return
  t.equal(block.needs, 'docker', 'marked as needing Docker')
  const argv = splitArgv(block.text.replace(/\\\n/g, ' '))
  t.equal(argv.at(-1), 'nginx', 'the README runs nginx')
  const d = await startDockerd(t)
  if (!d) return

  const agent = new Agent(
    parseAgentConfig(['--node', 'readme-docker', ...LOOPBACK_AGENT_FLAGS].concat(['--discovery', 'docker', '--docker-host', d.host]), {}),
    { logger: silentLogger() },
  )
  t.teardown(() => agent.stop({ leave: false }))
  await agent.start()

  // `docker run ... nginx` with nginx swapped for an image that behaves the same on port 80.
  await d.cli([...argv.slice(1, -1), '--name', 'readme-web', IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www'])
  const web = () =>
    agent
      .view()
      .snapshot()
      .hosts.flatMap((h) => h.services)
      .find((r) => r.name === 'web')
  await waitFor(() => web()?.status === 'alive', 60_000, 'web alive')
  t.equal(web()?.status, 'alive')
  t.same(
    web()?.ports.map((p) => p.servicePort),
    [10001],
  )
})
