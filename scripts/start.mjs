// `npm start`: one agent with embedded defaults. Docker discovery when a Docker engine
// answers (DOCKER_HOST or /var/run/docker.sock), else the example services of
// examples/static.json. Extra arguments are passed to `shoal agent`.
import { request } from 'node:http'
import { spawn } from 'node:child_process'

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

const docker = await dockerAnswers()
const discovery = docker ? ['--discovery', 'docker'] : ['--discovery', 'static', '--static', 'examples/static.json']
console.error(
  docker ? 'shoal: a Docker engine answers: discovering its containers' : 'shoal: no Docker engine answers: serving examples/static.json',
)
const child = spawn(process.execPath, ['dist/cli.js', 'agent', ...discovery, ...process.argv.slice(2)], { stdio: 'inherit' })
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
