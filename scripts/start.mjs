// `npm start`: one agent with embedded defaults. Builds first when dist/ is stale. Docker
// discovery when a Docker engine answers (DOCKER_HOST or /var/run/docker.sock), else the example
// services of examples/static.json; either only when neither the arguments nor SHOAL_DISCOVERY /
// SHOAL_STATIC choose the discovery. Extra arguments (and SHOAL_* variables) go to `shoal agent`.
//
// Stopping: SIGINT, SIGTERM and SIGHUP are passed to the agent and this script exits with its
// code. npm runs this under `sh -c`, which does not pass signals on; when that shell (or npm)
// dies, this script stops the agent (it polls its own parent), and the agent, which sees
// npm_command, leaves on its own when this script dies.
//
// The example services are the agent's own listeners (HTTP, xDS, gossip), each entry naming
// which one in its `example.listener` label. The file is written for the default ports; when
// the agent is given other addresses (`npm start -- --http 127.0.0.1:8777`, SHOAL_HTTP=...),
// the agent reads a copy whose ports and checks follow them, so every example stays healthy.
import { request } from 'node:http'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const EXAMPLES = 'examples/static.json'

function dockerAnswers() {
  const host = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'
  const opts = host.startsWith('tcp://')
    ? { host: new URL(host.replace('tcp://', 'http://')).hostname, port: Number(new URL(host.replace('tcp://', 'http://')).port || 2375) }
    : { socketPath: host.replace(/^unix:\/\//, '') }
  return new Promise((resolve) => {
    const req = request({ ...opts, path: '/_ping', timeout: 1000 }, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.on('timeout', () => {
      req.destroy()
      resolve(false)
    })
    req.end()
  })
}

/**
 * The examples for the addresses the agent will listen on; undefined when they are the
 * defaults (the file as it is), or when the flags do not parse (the agent will say why).
 * An entry whose listener has port 0 is left out: its port is only known once bound.
 */
async function examplesFor(args) {
  const { parseAgentConfig } = await import('../dist/agent/config.js')
  let cfg
  try {
    cfg = parseAgentConfig(args, process.env)
  } catch {
    return undefined
  }
  if (cfg.static !== EXAMPLES) return undefined
  const listeners = { http: cfg.http, xds: cfg.xds, bind: cfg.bind }
  const doc = JSON.parse(readFileSync(EXAMPLES, 'utf8'))
  let changed = false
  const services = []
  for (const s of doc.services) {
    const at = listeners[s.labels?.['example.listener']]
    const port = s.ports?.[0]
    if (!at || !port) {
      services.push(s)
      continue
    }
    const ip = at.host === '0.0.0.0' ? '127.0.0.1' : at.host === '::' ? '::1' : at.host
    if (at.port === port.port && ip === port.ip) {
      services.push(s)
      continue
    }
    changed = true
    if (at.port === 0) {
      console.error(`shoal: example ${s.name} left out: its listener has port 0, known only once bound`)
      continue
    }
    const args = s.check.type === 'HttpGet' ? `http://{{ host }}:${at.port}/healthz` : `{{ host }}:${at.port}`
    services.push({ ...s, ports: [{ ...port, port: at.port, ip }], check: { ...s.check, args } })
  }
  return changed ? { ...doc, services } : undefined
}

const built = spawnSync(process.execPath, ['scripts/build-if-stale.mjs'], { stdio: 'inherit' })
if (built.status !== 0) process.exit(built.status ?? 1)

const userArgs = process.argv.slice(2)
const sets = (flag) =>
  userArgs.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`)) || (process.env[`SHOAL_${flag.toUpperCase()}`] ?? '') !== ''
const chosen = sets('discovery') || sets('static')
const docker = await dockerAnswers()
// --static alone adds static discovery to the default (docker): without an engine that would
// only log Docker errors, so it serves the file alone.
let discovery = chosen
  ? sets('discovery') || docker
    ? []
    : ['--discovery', 'static']
  : docker
    ? ['--discovery', 'docker']
    : ['--discovery', 'static', '--static', EXAMPLES]
let tmp
if (!docker) {
  const doc = await examplesFor([...discovery, ...userArgs])
  if (doc) {
    tmp = mkdtempSync(join(tmpdir(), 'shoal-examples-'))
    writeFileSync(join(tmp, 'static.json'), JSON.stringify(doc, null, 2) + '\n')
    discovery = ['--discovery', 'static', '--static', join(tmp, 'static.json')]
  }
}
console.error(`shoal: ${await serving([...discovery, ...userArgs], docker, tmp !== undefined)}`)

/** What the agent will discover, in words, from the arguments it will get (as the agent reads them). */
async function serving(args, docker, adapted) {
  const { parseAgentConfig } = await import('../dist/agent/config.js')
  let cfg
  try {
    cfg = parseAgentConfig(args, process.env)
  } catch {
    return 'starting the agent (it says what is wrong with its flags)'
  }
  const what = cfg.discovery.map((d) =>
    d === 'docker'
      ? `the containers of the Docker engine${docker ? '' : ' (none answers yet)'}`
      : cfg.static === EXAMPLES || adapted
        ? `${EXAMPLES}${adapted ? ' (with the ports this agent listens on)' : ''}`
        : cfg.static,
  )
  return what.length === 0 ? 'no discovery (--discovery none): serving only what gossip brings' : `serving ${what.join(' and ')}`
}

const child = spawn(process.execPath, ['dist/cli.js', 'agent', ...discovery, ...userArgs], { stdio: 'inherit' })
let stopping = false
const stop = (sig) => {
  if (sig !== 'SIGHUP') stopping = true
  if (child.exitCode === null && child.signalCode === null) child.kill(sig)
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => stop(sig))
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent && !stopping) {
    console.error('shoal: the process that ran npm start is gone; stopping the agent')
    stop('SIGTERM')
  }
}, 500).unref()
child.on('exit', (code, signal) => {
  if (tmp) rmSync(tmp, { recursive: true, force: true })
  process.exit(code ?? (signal ? 1 : 0))
})
