import { createLogger } from '../log.js'
import { isShoalError } from '../errors.js'
import { parseAgentConfig } from './config.js'
import { Agent } from './agent.js'
import { setGrpcLogger } from '../xds/index.js'

/**
 * `shoal agent`: parse the configuration, start, and handle signals. Resolves with the
 * process exit code: 0 after a clean stop, 2 for bad configuration or a name conflict.
 */
export async function runAgent(argv: string[]): Promise<number> {
  let agent: Agent
  try {
    const config = parseAgentConfig(argv, process.env)
    const logger = createLogger({ level: config.logLevel, format: config.logFormat })
    // grpc-js writes its own lines to stderr (a failed bind prints one before our error line):
    // they go to our log at debug, and our own errors say what happened.
    const grpcLog = logger.child({ component: 'grpc-js' })
    const line = (...a: unknown[]) => grpcLog.debug(a.map(String).join(' '))
    setGrpcLogger({ error: line, info: line, debug: line } as Partial<Console> as Console)
    agent = new Agent(config, { logger })
  } catch (err) {
    if (isShoalError(err)) {
      process.stderr.write(`${err.message.startsWith('shoal ') ? '' : 'shoal: '}${err.message}\n`)
      return 2
    }
    throw err
  }
  return new Promise<number>((resolve) => {
    let signals = 0
    const finish = (code: number) => {
      clearInterval(orphaned)
      for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.removeAllListeners(s)
      resolve(code)
    }
    const onSignal = (sig: NodeJS.Signals) => {
      signals += 1
      if (signals > 1) {
        process.stderr.write(`shoal: second ${sig}, exiting without waiting\n`)
        process.exit(1)
      }
      const leave = agent.config.leaveOnTerminate
      agent.stop({ leave }).then(
        () => finish(0),
        () => finish(1),
      )
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    const orphaned = watchLauncher(() => {
      process.stderr.write(`shoal: the npm process that started this agent is gone; stopping\n`)
      onSignal('SIGTERM')
    })
    process.on('SIGHUP', () => {
      agent.reloadKeys()
      void agent.reloadIdentity()
    })
    agent.on('conflict', (info) => {
      process.stderr.write(`shoal: ${info.message}; refusing to run\n`)
      agent.stop({ leave: false }).then(
        () => finish(2),
        () => finish(2),
      )
    })
    agent.start().catch((err: unknown) => {
      process.stderr.write(`shoal: ${isShoalError(err) ? err.message : ((err as Error).stack ?? String(err))}\n`)
      agent.stop({ leave: false }).then(
        () => finish(isShoalError(err) ? 2 : 1),
        () => finish(1),
      )
    })
  })
}

/**
 * Under npm (`npm start`, `npx shoal agent`: npm sets npm_command), the agent runs below a
 * `sh -c` that does not pass SIGTERM on: stopping npm kills that shell and leaves the agent
 * orphaned, its ports held. So there, and only there, the agent leaves when its parent goes
 * (Linux reparents an orphan: its ppid changes). Started any other way (systemd, nohup, a
 * container's init) it keeps running whatever its parent does. Checks once a second.
 */
function watchLauncher(onGone: () => void): NodeJS.Timeout | undefined {
  if (!process.env['npm_command']) return undefined
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer)
      onGone()
    }
  }, 1000)
  timer.unref()
  return timer
}
