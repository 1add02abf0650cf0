/**
 * `shoal agent` as a user runs it: a child process of the built CLI (dist/cli.js) on ports
 * chosen once, so it can be killed and started again on the same addresses (a restart under
 * live clients). Stopped at teardown, even when the test fails.
 *
 * @example
 *   const agent = await AgentChild.start(t, { node: 'a', staticFile })
 *   await agent.kill()          // SIGKILL, as a crash
 *   await agent.spawn()         // same ports, same flags
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { handOutPort } from './listen.js'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CLI = join(REPO, 'dist', 'cli.js')

/** A port free for both TCP and UDP on 127.0.0.1 right now: listen.ts handOutPort. */
export function freePort(): Promise<number> {
  return handOutPort({ udp: true })
}

export interface AgentChildOptions {
  node: string
  staticFile: string
  /** File the agent's stdout and stderr go to (JSON log lines). */
  logFile: string
  extraArgs?: string[]
}

export class AgentChild {
  private child: ChildProcess | null = null
  private exited: Promise<void> = Promise.resolve()

  private constructor(
    readonly opts: AgentChildOptions,
    readonly ports: { gossip: number; xds: number; http: number },
  ) {}

  static async start(t: Pick<Test, 'teardown'>, opts: AgentChildOptions): Promise<AgentChild> {
    const a = new AgentChild(opts, { gossip: await freePort(), xds: await freePort(), http: await freePort() })
    t.teardown(() => a.kill())
    await a.spawn()
    return a
  }

  get xdsAddress(): string {
    return `127.0.0.1:${this.ports.xds}`
  }

  get url(): string {
    return `http://127.0.0.1:${this.ports.http}`
  }

  /** Start the process and wait until /readyz answers 200. */
  async spawn(ceilingMs = 30_000): Promise<void> {
    const args = [
      CLI,
      'agent',
      '--node',
      this.opts.node,
      '--bind',
      `127.0.0.1:${this.ports.gossip}`,
      '--xds',
      this.xdsAddress,
      '--http',
      `127.0.0.1:${this.ports.http}`,
      '--profile',
      'local',
      '--discovery',
      'static',
      '--static',
      this.opts.staticFile,
      '--ready-timeout',
      '1s',
      '--leave-on-terminate',
      'false',
      // Agents share this machine's loopback: no fixed DNS port.
      '--dns',
      'off',
      ...(this.opts.extraArgs ?? []),
    ]
    const fd = openSync(this.opts.logFile, 'a')
    const child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], cwd: REPO, env: { ...process.env, NODE_OPTIONS: '' } })
    closeSync(fd)
    this.child = child
    this.exited = new Promise((res) => child.once('exit', () => res()))
    const deadline = Date.now() + ceilingMs
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`agent ${this.opts.node} exited at start; see ${this.opts.logFile}`)
      const ok = await fetch(`${this.url}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      )
      if (ok) return
      if (Date.now() > deadline) throw new Error(`agent ${this.opts.node} not ready within ${ceilingMs} ms; see ${this.opts.logFile}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** SIGKILL (a crash) and wait for the exit. Idempotent. */
  async kill(): Promise<void> {
    const c = this.child
    if (!c) return
    this.child = null
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    await this.exited
  }

  /** GET a JSON path of the agent's HTTP API. */
  async json<T>(path: string): Promise<T> {
    return (await (await fetch(`${this.url}${path}`)).json()) as T
  }
}
