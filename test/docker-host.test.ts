import t from 'tap'
import { parseDockerHost } from '../src/docker/host.js'
import { isShoalError } from '../src/errors.js'

t.test('docker host parsing', async (t) => {
  t.same(parseDockerHost('unix:///run/x.sock', {}), { socketPath: '/run/x.sock' })
  t.same(parseDockerHost('/run/y.sock', {}), { socketPath: '/run/y.sock' })
  t.same(parseDockerHost('tcp://127.0.0.1:2375', {}), { host: '127.0.0.1', port: 2375, protocol: 'http' })
  t.same(parseDockerHost('tcp://[::1]:2375', {}), { host: '::1', port: 2375, protocol: 'http' })
  t.same(parseDockerHost(undefined, { DOCKER_HOST: 'unix:///env.sock' }), { socketPath: '/env.sock' })
  t.same(parseDockerHost('', {}), { socketPath: '/var/run/docker.sock' })
  for (const bad of ['http://x:1', 'tcp://host', 'tcp://h:99999', 'unix://rel.sock', 'nonsense']) {
    let code = ''
    try {
      parseDockerHost(bad, {})
    } catch (e) {
      if (isShoalError(e)) code = e.code + ' ' + e.message
    }
    t.match(code, new RegExp(`^SHOAL_ERR_DOCKER_HOST .*${bad.replace(/[/.*[\]]/g, '.')}`), bad)
  }
})
