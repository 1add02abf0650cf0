import t from 'tap'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseHostPort } from '../src/address.js'
import { parseAgentConfig, readKeyFile } from '../src/agent/config.js'
import { isShoalError } from '../src/errors.js'
import { RecordLimits } from '../src/registry/limits.js'

const KEY = Buffer.alloc(32, 7).toString('base64')

t.test('defaults follow the README flag table and docs/architecture.md "Default ports"', async (t) => {
  const c = parseAgentConfig(['--node', 'n1'], {})
  t.equal(c.node, 'n1')
  t.same(c.bind, { host: '0.0.0.0', port: 7946 })
  t.same(c.xds, { host: '127.0.0.1', port: 7776 })
  t.same(c.http, { host: '127.0.0.1', port: 7777 })
  t.equal(c.cluster, 'default')
  t.equal(c.profile, 'lan')
  t.same(c.discovery, ['docker'])
  t.equal(c.envoyBind, '127.0.0.1')
  t.equal(c.leaveOnTerminate, true)
  t.equal(c.allowExternalChecks, false)
  t.equal(c.advertise.port, 7946)
  t.same(c.dns, { bind: { host: '127.0.0.1', port: 8600 }, domain: 'shoal.', ttlSeconds: 0, recursors: [] })
  t.equal(c.tlsMode, 'off', 'no TLS without --tls-dir')
  t.equal(c.tlsDir, undefined)
})

t.test('the DNS flags', async (t) => {
  t.equal(parseAgentConfig(['--dns', 'off'], {}).dns, undefined, '--dns off')
  t.equal(parseAgentConfig([], { SHOAL_DNS: 'OFF' }).dns, undefined, 'SHOAL_DNS=off, any case')
  const c = parseAgentConfig(
    ['--dns', '[::1]:53', '--dns-domain', 'Svc.Example', '--dns-ttl', '1m', '--dns-recursors', '127.0.0.53, [::1]:5353'],
    {},
  )
  t.same(c.dns, {
    bind: { host: '::1', port: 53 },
    domain: 'svc.example.',
    ttlSeconds: 60,
    recursors: [
      { host: '127.0.0.53', port: 53 },
      { host: '::1', port: 5353 },
    ],
  })
})

t.test('--tls-dir: permissive unless --tls-mode says otherwise; leaf lifetime 24 h unless set', async (t) => {
  const c = parseAgentConfig(['--tls-dir', tmpdir()], {})
  t.equal(c.tlsDir, tmpdir())
  t.equal(c.tlsMode, 'permissive')
  t.equal(c.tlsLeafTtlMs, 24 * 3_600_000)
  const s = parseAgentConfig(['--tls-dir', tmpdir(), '--tls-mode', 'strict', '--tls-leaf-ttl', '2m'], {})
  t.equal(s.tlsMode, 'strict')
  t.equal(s.tlsLeafTtlMs, 120_000)
  t.equal(c.xdsSocket, undefined)
  t.equal(c.inboundPorts, undefined)
  const e = parseAgentConfig(['--tls-dir', tmpdir(), '--xds-socket', '/run/shoal/ads.sock', '--inbound-ports', '15000-15099'], {})
  t.equal(e.xdsSocket, '/run/shoal/ads.sock')
  t.same(e.inboundPorts, { from: 15000, to: 15099 })
})

t.test('environment variables, and a flag wins over its variable', async (t) => {
  const env = { SHOAL_NODE: 'fromenv', SHOAL_CLUSTER: 'blue', SHOAL_JOIN: '10.0.0.1,10.0.0.2:8000', SHOAL_LEAVE_ON_TERMINATE: 'false' }
  const c = parseAgentConfig(['--cluster', 'green'], env)
  t.equal(c.node, 'fromenv')
  t.equal(c.cluster, 'green')
  t.same(c.join, [
    { host: '10.0.0.1', port: 7946 },
    { host: '10.0.0.2', port: 8000 },
  ])
  t.equal(c.leaveOnTerminate, false)
})

t.test('bad configuration names the flag or variable', async (t) => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['--nope'], {}, /^shoal agent: unknown flag --nope; see `shoal agent --help`/],
    [['--node'], {}, /^shoal agent: --node needs a value/],
    [['--bind', '127.0.0.1:x'], {}, /--bind: "127.0.0.1:x" has no numeric port/],
    [['--bind', 'host.example:7946'], {}, /--bind: "host.example:7946" is not an IP address with a port/],
    // The one rule for advertised addresses (address.ts advertisedIpProblem): others cannot use a zone ID or 0.0.0.0.
    [['--advertise', '[fe80::1%eth0]:7946'], {}, /--advertise: "\[fe80::1%eth0\]:7946" has a zone ID \(%eth0\)/],
    [['--advertise', '0.0.0.0'], {}, /--advertise: "0.0.0.0" is the unspecified address/],
    [['--bind', '[fe80::1%eth0]:7946'], {}, /--bind: "fe80::1%eth0" is where the agent binds, but .* has a zone ID .*; give --advertise/],
    [['--ready-timeout', '5'], {}, /--ready-timeout: "5" is not a duration like 500ms, 10s, 1m, 24h or 30d \(add a unit: 5s\)/],
    [['--cluster', ''], {}, /--cluster: "" is not a valid cluster name \(1-64 characters/],
    [['--key', 'x', '--key-file', '/k'], {}, /--key and --key-file: give the keys one way/],
    [['--discovery', 'none', '--static', '/x.json'], {}, /--static with --discovery none: the discovery list leaves out static/],
    [['--discovery', 'none,docker'], {}, /--discovery: "none" cannot be combined/],
    [['--discovery', 'static', '--static', '/x.json', '--docker-network', 'ov'], {}, /--docker-network: only applies to Docker discovery/],
    [['--log-format', 'xml'], {}, /--log-format: "xml" is not json or pretty/],
    [['--http', '127.0.0.1:70000'], {}, /--http: .*out of range/],
    [['--profile', 'fast'], {}, /--profile: "fast" is not lan, local or wan/],
    [[], { SHOAL_PROFILE: 'fast' }, /SHOAL_PROFILE: "fast"/],
    [['--key', 'short'], {}, /--key \(key 1\): a gossip key must be 32 bytes in base64 \(`shoal keygen` makes one\)/],
    [['--key-file', '/nonexistent/keys'], {}, /--key-file \/nonexistent\/keys: cannot read/],
    [['--discovery', 'consul'], {}, /--discovery: "consul" is not docker, static or none/],
    [['--discovery', 'static'], {}, /static discovery needs --static PATH/],
    [['--leave-on-terminate', 'maybe'], {}, /--leave-on-terminate: "maybe" is not true or false/],
    [['--drain-on-stop', 'sometimes'], {}, /--drain-on-stop: "sometimes" is not true or false/],
    [['--discovery', 'none', '--drain-on-stop=false'], {}, /--drain-on-stop: only applies to Docker discovery/],
    [['--leave-drain', '1'], {}, /--leave-drain: "1" is not a duration .*\(add a unit: 1s\)/],
    [['--leave-drain', '5m'], {}, /--leave-drain: "5m" is over 1m/],
    [['--log-level', 'loud'], {}, /--log-level: "loud"/],
    [['--dns', '127.0.0.1'], {}, /--dns: "127.0.0.1" has no port/],
    [['--dns', 'off', '--dns-ttl', '5s'], {}, /--dns-ttl: only applies to the DNS interface, which is off \(--dns off\)/],
    [['--dns', 'off'], { SHOAL_DNS_RECURSORS: '127.0.0.53' }, /SHOAL_DNS_RECURSORS: only applies to the DNS interface/],
    [['--dns-domain', 'bad_domain.'], {}, /--dns-domain: "bad_domain." is not a DNS domain/],
    [['--dns-domain', 'a..b'], {}, /--dns-domain: "a..b" is not a DNS domain/],
    [['--dns-ttl', '1500ms'], {}, /--dns-ttl: "1500ms" is not a whole number of seconds/],
    [['--dns-ttl', '30'], {}, /--dns-ttl: "30" is not a duration .*\(add a unit: 30s\)/],
    [['--dns-recursors', 'dns.example'], {}, /--dns-recursors: "dns.example" is not an IP address with a port/],
    [
      ['--dns', '127.0.0.1:5300', '--dns-recursors', '127.0.0.1:5300'],
      {},
      /--dns-recursors: 127.0.0.1:5300 is this agent's own --dns address; forwarding to it would loop/,
    ],
    [['--tls-mode', 'strict'], {}, /--tls-mode: strict needs identities: add --tls-dir DIR/],
    [[], { SHOAL_TLS_MODE: 'permissive' }, /SHOAL_TLS_MODE: permissive needs identities/],
    [
      ['--tls-dir', '/nonexistent/tls'],
      {},
      /--tls-dir: "\/nonexistent\/tls" is not a directory: make it and write the node's intermediate there with `shoal ca intermediate --out \/nonexistent\/tls`/,
    ],
    [['--tls-dir', tmpdir(), '--tls-mode', 'on'], {}, /--tls-mode: "on" is not off, permissive or strict/],
    [['--tls-dir', tmpdir(), '--tls-leaf-ttl', '30s'], {}, /--tls-leaf-ttl: "30s" is outside 1m to 90d/],
    [['--tls-leaf-ttl', '2m'], {}, /--tls-leaf-ttl: only applies with --tls-dir/],
    [['--xds-socket', 'ads.sock'], {}, /--xds-socket: "ads.sock" is not an absolute path/],
    [['--tls-dir', tmpdir(), '--inbound-ports', '15000'], {}, /--inbound-ports: "15000" is not a port range FROM-TO/],
    [['--tls-dir', tmpdir(), '--inbound-ports', '15099-15000'], {}, /--inbound-ports: "15099-15000" is not a port range/],
    [['--tls-dir', tmpdir(), '--inbound-ports', '0-10'], {}, /--inbound-ports: "0-10" is not a port range/],
    [['--inbound-ports', '15000-15099'], {}, /--inbound-ports: inbound mTLS listeners need --tls-dir/],
  ]
  for (const [argv, env, re] of cases) {
    try {
      parseAgentConfig(argv, env)
      t.fail(`accepted ${argv.join(' ')} ${JSON.stringify(env)}`)
    } catch (err) {
      t.ok(isShoalError(err, 'SHOAL_ERR_CONFIG'), 'a config error')
      t.match((err as Error).message, re)
    }
  }
})

t.test('lifecycle: drain on stop (on by default, --drain-on-stop=false), a leave drains 1 s first (--leave-drain)', async (t) => {
  const d = parseAgentConfig([], {})
  t.same([d.drainOnStop, d.leaveDrainMs], [true, 1000])
  const c = parseAgentConfig(['--drain-on-stop=false', '--leave-drain', '250ms'], {})
  t.same([c.drainOnStop, c.leaveDrainMs], [false, 250])
  const e = parseAgentConfig([], { SHOAL_DRAIN_ON_STOP: 'false', SHOAL_LEAVE_DRAIN: '0s' })
  t.same([e.drainOnStop, e.leaveDrainMs], [false, 0])
})

t.test('key file: one key per line, comments ignored, bad line named', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-keys-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const good = join(dir, 'good')
  writeFileSync(good, `# primary first\n${KEY}\n\n${Buffer.alloc(32, 9).toString('base64')}\n`)
  t.equal(readKeyFile(good).length, 2)
  const bad = join(dir, 'bad')
  writeFileSync(bad, `${KEY}\nnot-a-key\n`)
  t.throws(() => readKeyFile(bad), /line 2: a gossip key must be 32 bytes/)
  const c = parseAgentConfig(['--key-file', good, '--static', '/x.json'], {})
  t.equal(c.keyFile, good)
  t.same(c.discovery, ['docker', 'static'])
})

t.test('host:port forms', async (t) => {
  t.same(parseHostPort('[::1]:80', 'x'), { host: '::1', port: 80 })
  t.same(parseHostPort('10.1.2.3', 'x', { defaultPort: 7946 }), { host: '10.1.2.3', port: 7946 })
  t.same(parseHostPort('seed.example:7946', 'x'), { host: 'seed.example', port: 7946 })
  t.throws(() => parseHostPort('10.1.2.3', 'x'), /x: "10.1.2.3" has no port/)
  t.throws(() => parseHostPort('::1:80', 'x'), /not HOST:PORT \(write IPv6 as \[addr\]:port\)/)
  t.throws(() => parseHostPort('[10.0.0.1]:80', 'x'), /not an IPv6 address/)
  t.throws(() => parseHostPort('h:0', 'x'), /out of range 1-65535/)
  t.same(parseHostPort('h:0', 'x', { allowZero: true }), { host: 'h', port: 0 })
  t.throws(() => parseHostPort('bad host:1', 'x'), /no valid host/)
})

t.test('--node: the record limit for node names is the flag’s limit (one rule, registry/names.ts)', async (t) => {
  const max = RecordLimits.host.build
  t.equal(parseAgentConfig(['--node', 'n'.repeat(max)], {}).node.length, max, `${max} characters: taken`)
  t.throws(() => parseAgentConfig(['--node', 'n'.repeat(max + 1)], {}), {
    code: 'SHOAL_ERR_CONFIG',
    message: new RegExp(`--node: "n{${max + 1}}" is not a valid node name \\(\\[A-Za-z0-9._-\\], up to ${max}\\)`),
  })
  t.throws(() => parseAgentConfig([], { SHOAL_NODE: '-x' }), { message: /SHOAL_NODE: "-x" is not a valid node name/ })
  t.ok(RecordLimits.host.accept >= max, 'and every peer takes what an owner may be named')
})

t.test('--api-token: empty or holding whitespace is a configuration error naming the flag', async (t) => {
  t.throws(() => parseAgentConfig(['--api-token', ''], {}), /--api-token: is empty; give a token of non-space characters/)
  t.throws(() => parseAgentConfig(['--api-token', 'a b'], {}), /--api-token: holds whitespace/)
  t.throws(() => parseAgentConfig([], { SHOAL_API_TOKEN: 'a\tb' }), /SHOAL_API_TOKEN: holds whitespace/)
  t.equal(parseAgentConfig(['--api-token', 's3cr3t-._~+/='], {}).apiToken, 's3cr3t-._~+/=')
  t.equal(parseAgentConfig([], { SHOAL_API_TOKEN: '' }).apiToken, undefined, 'an empty variable is unset, as for every flag')
})

t.test('--http-watch-max: a whole number from 1 to 999999, else a configuration error naming the flag', async (t) => {
  t.equal(parseAgentConfig([], {}).httpWatchMax, undefined, 'unset: the server default (256)')
  t.equal(parseAgentConfig(['--http-watch-max', '12'], {}).httpWatchMax, 12)
  t.equal(parseAgentConfig([], { SHOAL_HTTP_WATCH_MAX: '999999' }).httpWatchMax, 999999)
  for (const bad of ['0', '-1', '1.5', '1e3', 'many', '1000000', ''])
    t.throws(
      () => parseAgentConfig([`--http-watch-max=${bad}`], {}),
      { code: 'SHOAL_ERR_CONFIG', message: /--http-watch-max: .* is not a whole number of streams from 1 to 999999/ },
      JSON.stringify(bad),
    )
})
