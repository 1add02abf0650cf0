import t from 'tap'
import { renderTemplate, splitArgv } from '../src/health/template.js'
import { HealthScheduler } from '../src/health/scheduler.js'
import { silentLogger } from '../src/log.js'
import { isShoalError, type ErrorCode } from '../src/errors.js'
import { serve, tcpService } from './lib/listen.js'

/** True when fn throws a ShoalError with `code` whose message names `input`. */
function throwsCode(fn: () => unknown, code: ErrorCode, input: string): boolean {
  try {
    fn()
  } catch (e) {
    return isShoalError(e, code) && e.message.includes(input)
  }
  return false
}

const ports = [
  { type: 'tcp' as const, port: 32768, servicePort: 10080, ip: '10.0.0.5', containerPort: 80 },
  { type: 'tcp' as const, port: 32769, servicePort: 10443, ip: '10.0.0.5', containerPort: 443 },
]

t.test('templates expand host, container and tcp N', async (t) => {
  const ctx = { host: '10.0.0.5', containerId: 'abcdef0123456789', ports }
  t.equal(renderTemplate('http://{{ host }}:{{ tcp 80 }}/health', ctx), 'http://10.0.0.5:32768/health')
  t.equal(renderTemplate('{{host}}:{{tcp 443}}', ctx), '10.0.0.5:32769')
  t.equal(renderTemplate('/bin/check {{ container }}', ctx), '/bin/check abcdef0123456789')
  t.equal(renderTemplate('no templates', ctx), 'no templates')
  // IPv6: brackets, so the URL and host:port forms stay valid (a fault once: http://::1:N/).
  const v6 = { host: '::1', ports: [{ port: 9000 }] }
  t.equal(renderTemplate('http://{{ host }}:{{ tcp 9000 }}/health', v6), 'http://[::1]:9000/health')
  t.equal(renderTemplate('{{ host }}:{{ tcp 9000 }}', v6), '[::1]:9000')
  // static entries have no container port: tcp N matches the port itself
  t.equal(renderTemplate('{{ tcp 9000 }}', { host: 'h', ports: [{ port: 9000 }] }), '9000')
  for (const bad of ['{{ tcp 8080 }}', '{{ nope }}', '{{ tcp x }}']) {
    t.ok(
      throwsCode(() => renderTemplate(bad, ctx), 'SHOAL_ERR_CHECK_TEMPLATE', bad),
      bad,
    )
  }
  t.ok(throwsCode(() => renderTemplate('{{ container }}', { host: 'h', ports: [] }), 'SHOAL_ERR_CHECK_TEMPLATE', '{{ container }}'))
})

t.test('argv splitting without a shell', async (t) => {
  t.same(splitArgv('/bin/sh -c   "exit 0"'), ['/bin/sh', '-c', 'exit 0'])
  t.same(splitArgv(`a 'b c' d\\ e ""`), ['a', 'b c', 'd e', ''])
  t.same(splitArgv('  '), [])
  t.ok(throwsCode(() => splitArgv('a "b'), 'SHOAL_ERR_CHECK_ARGS', 'a "b'))
})

t.test('a Tcp check with {{ host }}:{{ tcp N }} reaches the mapped port', async (t) => {
  const s = tcpService()
  const port = await serve(t, s)
  const hs = new HealthScheduler({ intervalMs: 60_000 }, { logger: silentLogger() })
  t.teardown(() => hs.stop())
  hs.start()
  const ctx = { host: '127.0.0.1', ports: [{ type: 'tcp' as const, port, servicePort: 10080, ip: '127.0.0.1', containerPort: 8080 }] }
  const got = new Promise<[string, string][]>((r) => {
    const seen: [string, string][] = []
    hs.on('change', (id: string, st: string) => {
      seen.push([id, st])
      if (seen.length === 2) r(seen)
    })
  })
  hs.set('good', { type: 'Tcp', args: '{{ host }}:{{ tcp 8080 }}' }, ctx)
  hs.set('bad-template', { type: 'Tcp', args: '{{ host }}:{{ tcp 9999 }}' }, ctx)
  const seen = new Map(await got)
  t.equal(seen.get('good'), 'alive')
  t.equal(seen.get('bad-template'), 'unhealthy', 'a template naming no port fails the check')
})
