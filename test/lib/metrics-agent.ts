/** One in-process agent for the metrics tests: started with `args`, stopped at teardown; its /metrics text. */
import { Agent } from '../../src/agent/agent.js'
import { parseAgentConfig } from '../../src/agent/config.js'
import { silentLogger } from '../../src/log.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

export async function metricsAgent(t: Teardown, args: string[]): Promise<{ agent: Agent; text: string }> {
  const agent = new Agent(parseAgentConfig(args, {}), { logger: silentLogger() })
  t.teardown(() => agent.stop({ leave: false }))
  await agent.start()
  const text = await (await fetch(`http://127.0.0.1:${agent.bound.http}/metrics`)).text()
  return { agent, text }
}
