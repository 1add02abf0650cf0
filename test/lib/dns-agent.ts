/**
 * A real agent for the DNS tests: static discovery from a file in a temp folder, every
 * listener on 127.0.0.1 port 0, stopped and its folder removed at the test's teardown.
 *
 * @example
 *   const a = await dnsAgent(t, [{ id: 'web-1', name: 'web', ports: [{ port: 8080, servicePort: 10001, ip: '127.0.1.1' }] }])
 *   await dig(a.agent.bound.dns, ['web.service.shoal'])
 *   await a.write([...])                      // rewrite the file; resolves once the catalog shows it
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { Agent } from '../../src/agent/agent.js'
import { parseAgentConfig } from '../../src/agent/config.js'
import { silentLogger, type Logger } from '../../src/log.js'
import { liveRecords } from '../../src/registry/types.js'
import { loopbackAgentFlags } from './agent-process.js'
import { waitFor } from './wait.js'

export interface StaticEntry {
  id: string
  name: string
  ports: Array<{ port: number; servicePort: number; ip?: string; type?: 'tcp' | 'udp' }>
  [more: string]: unknown
}

export interface DnsAgent {
  agent: Agent
  /** The agent's DNS port. */
  port: number
  /** The agent's HTTP base URL. */
  http: string
  /** Rewrite the static file; resolves once the catalog lists exactly these ids as live. */
  write(services: StaticEntry[]): Promise<void>
}

export async function dnsAgent(
  t: Pick<Test, 'teardown'>,
  services: StaticEntry[],
  opts: { flags?: string[]; logger?: Logger; node?: string } = {},
): Promise<DnsAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-dns-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'static.json')
  const put = (list: StaticEntry[]): void => {
    writeFileSync(file + '.tmp', JSON.stringify({ services: list }))
    renameSync(file + '.tmp', file)
  }
  put(services)
  const flags = [
    ...loopbackAgentFlags(opts.node ?? 'dns-node', { dns: true }),
    '--ready-timeout',
    '10ms',
    '--discovery',
    'static',
    '--static',
    file,
    ...(opts.flags ?? []),
  ]
  const agent = new Agent(parseAgentConfig(flags, {}), { logger: opts.logger ?? silentLogger() })
  t.teardown(() => agent.stop({ leave: false }))
  await agent.start()
  const ids = (list: StaticEntry[]): string =>
    list
      .map((s) => s.id)
      .sort()
      .join()
  const shows = (list: StaticEntry[]) => (): boolean =>
    liveRecords(agent.view().snapshot())
      .map((r) => r.id)
      .sort()
      .join() === ids(list)
  await waitFor('the agent to be ready and list its static services', () => agent.isReady() && shows(services)())
  return {
    agent,
    port: agent.bound.dns,
    http: `http://127.0.0.1:${agent.bound.http}`,
    async write(list) {
      put(list)
      await waitFor('the catalog to show the new static file', shows(list))
    },
  }
}
