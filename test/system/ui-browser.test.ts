// The web UI in a real headless Chromium against a real cluster: three in-process agents on
// loopback (gossip, catalog, health checks, HTTP) fed by static files. The page is agent A's;
// what it shows of B and C comes over gossip. Without a reload it shows a service added to
// agent C's static file (with an authorization service that does not exist: the xDS warnings
// panel says so), a health-check status change on B, and C crashing (its member state, its
// instances gone). Issue 16: an instance's details with its check result, drain and undrain
// through the buttons (node-a runs with --api-token: the page's API token field supplies it),
// another host's instance's details (what its owner gossips, no buttons, where to drain it),
// serving counts, deep links. Saves screenshots under test-output/.
import t from 'tap'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { type Server, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent.js'
import { parseAgentConfig } from '../../src/agent/config.js'
import { silentLogger } from '../../src/log.js'
import { liveRecords } from '../../src/registry/types.js'
import { AdsClient, TypeUrl } from '../lib/xds-fixture.js'
import { waitFor } from '../lib/wait.js'
import { loopbackAgentFlags } from '../lib/agent-process.js'
import { tcpService } from '../lib/listen.js'

// The functions given to page.waitForFunction and $eval run in the page, where it exists.
declare const document: any

const CHROMIUM = '/usr/bin/chromium'
const API_TOKEN = 'ui-test-token'
const OUT = join(process.cwd(), 'test-output')
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (scripts/test.mjs installs Debian "chromium" when run as root)`

interface Entry {
  id: string
  name: string
  port: number
  servicePort: number
  proxyMode?: string
  check?: { type: string; args?: string; intervalMs?: number; rise?: number; fall?: number }
  authz?: { service: string }
  tags?: string[]
  attributes?: Record<string, string>
}

/** A loopback TCP service that keeps connections open as a live one does (a Tcp check fails on one that closes them at once). */
async function listen(): Promise<Server> {
  const s = tcpService()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return s
}
const portOf = (s: Server) => (s.address() as AddressInfo).port
/** A loopback port where nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const s = await listen()
  const p = portOf(s)
  await new Promise((r) => s.close(r))
  return p
}

t.test('the UI of agent A follows a real 3-agent cluster live', { skip }, async (t) => {
  const { chromium } = await import('playwright-core')
  const dir = mkdtempSync(join(tmpdir(), 'shoal-ui-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const writeStatic = (node: string, services: Entry[]): string => {
    const path = join(dir, `${node}.json`)
    writeFileSync(
      path + '.tmp',
      JSON.stringify({
        services: services.map((s) => ({
          ...s,
          ports: [{ port: s.port, servicePort: s.servicePort }],
          port: undefined,
          servicePort: undefined,
        })),
      }),
    )
    renameSync(path + '.tmp', path)
    return path
  }

  // orders on node-b: a Tcp check against a real listener (alive), closed later (unhealthy).
  const ordersB = await listen()
  t.teardown(() => new Promise((r) => ordersB.close(r)))
  const fast = { intervalMs: 250, timeoutMs: 200, rise: 1, fall: 2 }
  const files: Record<string, Entry[]> = {
    'node-a': [
      { id: 'web-a', name: 'web', port: 32768, servicePort: 10001, proxyMode: 'http' },
      { id: 'redis-a', name: 'redis', port: 6379, servicePort: 10003, proxyMode: 'tcp' },
    ],
    'node-b': [
      { id: 'web-b', name: 'web', port: 32771, servicePort: 10001, proxyMode: 'http' },
      {
        id: 'orders-b',
        name: 'orders',
        port: portOf(ordersB),
        servicePort: 10002,
        proxyMode: 'grpc',
        check: { type: 'Tcp', args: `{{ host }}:${portOf(ordersB)}`, ...fast },
      },
    ],
    'node-c': [
      { id: 'web-c', name: 'web', port: 32770, servicePort: 10001, proxyMode: 'http' },
      {
        id: 'orders-c',
        name: 'orders',
        port: 50051,
        servicePort: 10002,
        proxyMode: 'grpc',
        check: { type: 'Tcp', args: `{{ host }}:${await closedPort()}`, ...fast },
      },
    ],
  }

  const agents = new Map<string, Agent>()
  t.teardown(() => Promise.all([...agents.values()].map((a) => a.stop({ leave: false }))))
  let seed: string | undefined
  for (const node of Object.keys(files)) {
    const flags = [
      ...loopbackAgentFlags(node, { dns: true }),
      '--cluster',
      'ui-test',
      '--discovery',
      'static',
      '--static',
      writeStatic(node, files[node]!),
      ...(seed ? ['--join', seed] : []),
      // node-a wants a token for drain and undrain even from loopback: its page must send it.
      ...(node === 'node-a' ? ['--api-token', API_TOKEN] : []),
    ]
    const agent = new Agent(parseAgentConfig(flags, {}), { logger: silentLogger() })
    agents.set(node, agent)
    await agent.start()
    seed ??= `127.0.0.1:${agent.bound.gossip}`
  }
  const a = agents.get('node-a')!
  const live = () => liveRecords(a.view().snapshot())
  const statusOf = (id: string) => live().find((r) => r.id === id)?.status
  await waitFor(
    'node-a to see every instance with its first check result',
    () => live().length === 6 && statusOf('orders-b') === 'alive' && statusOf('orders-c') === 'unhealthy',
  )

  // Drain web-c through agent C's API, as an operator does (loopback caller, no token set).
  const drained = await fetch(`http://127.0.0.1:${agents.get('node-c')!.bound.http}/api/instances/web-c/drain`, { method: 'POST' })
  t.equal(drained.status, 200, "web-c drained through node-c's API")
  await waitFor('node-a to see web-c draining', () => statusOf('web-c') === 'draining')

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } })
  const pageErrors: string[] = []
  page.on('pageerror', (e) => pageErrors.push(e.message))
  // The browser logs each refused drain (401) as a failed load: counted apart, as expected.
  let refusedLoads = 0
  page.on('console', (m) => {
    if (m.type() !== 'error') return
    if (/status of 401 \(Unauthorized\)/.test(m.text())) refusedLoads++
    else pageErrors.push(m.text())
  })

  await page.goto(`http://127.0.0.1:${a.bound.http}/`)
  await page.waitForFunction(
    () => document.querySelectorAll('#grid-body tr').length === 3 && document.getElementById('conn-text')?.textContent === 'live',
  )
  const rows = await page.$$eval('#grid-body tr', (trs) => trs.map((tr) => tr.getAttribute('data-service')))
  t.same(rows, ['orders', 'redis', 'web'], 'services from the cluster, sorted')
  const heads = await page.$$eval('#grid-head th.host .host-name', (ths) => ths.map((th) => th.textContent))
  t.same(heads, ['node-a', 'node-b', 'node-c'], 'one column per host')
  t.equal(await page.textContent('#cluster'), 'ui-test', 'the cluster name')
  t.match(await page.textContent('tr[data-service="web"]'), /:10001/, 'the ServicePort is shown')
  const cls = (id: string) => page.$eval(`[data-instance="${id}"]`, (e) => e.className as string)
  t.match(await cls('web-c'), /st-draining/, "draining (set on node-c) has its own colour on node-a's page")
  t.equal(
    await page.textContent('[data-instance="web-c"] .status'),
    'draining (operator)',
    'the drain reason is shown beside the status (issue 14)',
  )
  t.match(await cls('orders-c'), /st-unhealthy/, 'a failing check on node-c shows unhealthy')
  t.match(await cls('redis-a'), /st-unknown/, 'no check: unknown')
  t.match(await cls('orders-b'), /st-alive/, 'a passing check on node-b shows alive')

  mkdirSync(OUT, { recursive: true })
  await page.screenshot({ path: join(OUT, 'ui-initial.png'), fullPage: true })

  // Issue 16: counts say serving; a drained instance is draining, not down (no red).
  const summary = (svc: string) => page.$eval(`tr[data-service="${svc}"] .svc-health`, (e) => [e.textContent, e.className])
  t.same(await summary('web'), ['2 of 3 serving · 1 draining', 'svc-health svc-health-draining'], 'web: draining is not counted as down')
  t.same(await summary('orders'), ['1 of 2 serving · 1 unhealthy', 'svc-health svc-health-warn'])

  // Details of an instance on its owner's page: the check, its target and what it found.
  const pageC = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  pageC.on('pageerror', (e) => pageErrors.push(e.message))
  await pageC.goto(`http://127.0.0.1:${agents.get('node-c')!.bound.http}/`)
  await pageC.waitForFunction(() => !!document.querySelector('[data-instance="orders-c"]'))
  await pageC.click('[data-instance="orders-c"]')
  await pageC.waitForFunction(() => /connection refused/.test(document.getElementById('details-fields')?.textContent ?? ''), undefined, {
    timeout: 10_000,
  })
  const details = (await pageC.textContent('#details-fields')) ?? ''
  t.match(details, /checkTcp 127\.0\.0\.1:\d+/, 'the check type and target')
  t.match(details, /last checkfail: connection refused at .*, 0 passes \/ \d+ failures in a row/, 'the last check result')
  t.match(details, /detailTcp 127\.0\.0\.1:\d+: connection refused/, 'the detail other hosts learn')
  await pageC.screenshot({ path: join(OUT, 'ui-details.png'), fullPage: true })
  // `npm run ui:screenshot` keeps this one as the README's picture.
  if (process.env.SHOAL_UI_SCREENSHOT) copyFileSync(join(OUT, 'ui-details.png'), process.env.SHOAL_UI_SCREENSHOT)

  // Details of another host's instance on node-a's page: what its owner gossips (status,
  // reason, the check's detail, version), no drain buttons, and where to drain it instead.
  await page.click('[data-instance="orders-c"]')
  await page.waitForFunction(() => /orders-c on node-c/.test(document.getElementById('details-title')?.textContent ?? ''))
  const remote = (await page.textContent('#details-fields')) ?? ''
  t.match(remote, /statusunhealthy \(not serving\)/, "a remote instance's status")
  t.match(remote, /detailTcp 127\.0\.0\.1:\d+: connection refused/, "its check's detail, as node-c gossips it")
  t.match(remote, /version\d+\.\d+/, 'its version')
  t.match(remote, /ports127\.0\.0\.1:50051 → ServicePort 10002/, 'its ports')
  t.equal(await page.isVisible('#details-actions'), false, "no drain buttons for node-c's instance on node-a's page")
  t.match(
    await page.textContent('#details-elsewhere'),
    /node-c runs this instance: .*only that agent drains it .*shoal drain orders-c --agent HOST:PORT/,
    'it says where to drain it',
  )
  await page.click('[data-instance="web-c"]')
  await page.waitForFunction(() => /web-c on node-c/.test(document.getElementById('details-title')?.textContent ?? ''))
  t.match(
    await page.textContent('#details-fields'),
    /statusdraining \(not serving\)reasonoperatordetaildrained by an operator/,
    "a remote drain: status, reason and detail from node-c's record",
  )

  // Drain through the button on node-a's page (node-a runs with --api-token): refused until
  // the token is entered, then node-c's page (another agent) sees it, then the undrain.
  await page.click('[data-instance="redis-a"]')
  await page.waitForFunction(() => document.getElementById('details-actions')?.hidden === false)
  t.equal(await page.isVisible('#details-elsewhere'), false, 'no "drain on its own host" note for a local instance')
  await page.fill('#drain-reason', 'maintenance')
  await page.click('#drain')
  await page.waitForFunction(() => /^401: /.test(document.getElementById('action-result')?.textContent ?? ''))
  t.match(
    await page.textContent('#action-result'),
    /^401: missing "Authorization: Bearer TOKEN" header \(the agent runs with --api-token\): enter the agent's --api-token in the API token field$/,
    'without the token: the 401 and what to do',
  )
  await page.fill('#api-token', 'not-the-token')
  await page.click('#drain')
  await page.waitForFunction(() => /does not match/.test(document.getElementById('action-result')?.textContent ?? ''))
  t.match(await page.textContent('#action-result'), /^401: the bearer token does not match --api-token: check the API token field/)
  t.equal(statusOf('redis-a'), 'unknown', 'a refused drain changes nothing')
  await page.fill('#api-token', API_TOKEN)
  await page.click('#drain')
  await pageC.waitForFunction(() => document.querySelector('[data-instance="redis-a"]')?.classList.contains('st-draining'), undefined, {
    timeout: 10_000,
  })
  t.pass("a drain through node-a's button reaches node-c's page")
  await page.waitForFunction(
    () => /drained by an operator: maintenance/.test(document.getElementById('details-fields')?.textContent ?? ''),
    undefined,
    {
      timeout: 10_000,
    },
  )
  t.pass("the drain's reason is shown")
  t.equal(
    await page.evaluate(() => (globalThis as any).sessionStorage.getItem('shoal.apiToken')),
    API_TOKEN,
    'the token is kept in sessionStorage',
  )
  // A reload keeps it for this tab: the undrain goes through without typing it again.
  await page.reload()
  await page.waitForFunction(() => !!document.querySelector('[data-instance="redis-a"]'))
  t.equal(await page.inputValue('#api-token'), API_TOKEN, 'the field is filled again after a reload')
  await page.click('[data-instance="redis-a"]')
  await page.waitForFunction(() => document.getElementById('undrain')?.hidden === false)
  await page.click('#undrain')
  await pageC.waitForFunction(() => document.querySelector('[data-instance="redis-a"]')?.classList.contains('st-unknown'), undefined, {
    timeout: 10_000,
  })
  t.pass("the undrain reaches node-c's page")
  t.equal(await page.textContent('#action-result'), 'undrained', 'with the kept token')
  await pageC.close()

  // An xDS client of node-a NACKs its clusters: the page lists it with the NACK's error text.
  const ads = new AdsClient(a.bound.xds)
  t.teardown(() => ads.close())
  ads.send({ type_url: TypeUrl.cluster, node: { id: 'envoy-ui', cluster: 'ui-test', user_agent_name: 'envoy' } })
  const cds = await ads.next(10_000)
  ads.send({
    type_url: cds.type_url,
    version_info: '',
    response_nonce: cds.nonce,
    error_detail: { code: 3, message: 'rejected by the UI test' },
  })
  await page.waitForFunction(
    () => /rejected by the UI test/.test(document.querySelector('tr[data-xds-client="envoy-ui"]')?.textContent ?? ''),
    undefined,
    { timeout: 10_000 },
  )
  t.match(
    await page.textContent('tr[data-xds-client="envoy-ui"]'),
    /envoy-uienvoycds.*—.*: rejected by the UI test/,
    'the NACKing client, its type and the error',
  )
  ads.close()

  // Deep links an alert can point at.
  await page.goto(`http://127.0.0.1:${a.bound.http}/#/services/orders`)
  await page.waitForFunction(() => document.querySelector('tr[data-service="orders"]')?.classList.contains('selected'))
  t.pass('#/services/orders selects the orders row')
  await page.goto(`http://127.0.0.1:${a.bound.http}/#/hosts/node-b`)
  await page.waitForFunction(() => document.querySelector('th[data-host="node-b"]')?.classList.contains('selected'))
  t.pass('#/hosts/node-b selects the node-b column')
  // A malformed link (a cut-off percent-escape) says so instead of throwing URIError on each render.
  const errorsBefore = pageErrors.length
  await page.goto(`http://127.0.0.1:${a.bound.http}/#/services/%E0%A4%A`)
  await page.waitForFunction(() => !document.querySelector('#link-missing')?.hasAttribute('hidden'))
  t.match(await page.textContent('#link-missing'), /Link not found: "%E0%A4%A" is not a valid service name/)
  await page.goto(`http://127.0.0.1:${a.bound.http}/#/services/no-such-service`)
  await page.waitForFunction(() => /no service "no-such-service"/.test(document.getElementById('link-missing')!.textContent ?? ''))
  t.same(pageErrors.slice(errorsBefore), [], 'no page error from the malformed link')
  t.equal(await page.locator('.selected').count(), 0, 'nothing selected')

  // A service added to agent C's static file reaches A over gossip and the page over /api/watch.
  writeStatic('node-c', [
    ...files['node-c']!,
    {
      id: 'payments-c',
      name: 'payments',
      port: 8443,
      servicePort: 10004,
      proxyMode: 'http',
      authz: { service: 'authz' },
      tags: ['blue', '<b>canary</b>'],
      attributes: { region: 'us-east' },
    },
  ])
  await page.waitForFunction(() => !!document.querySelector('tr[data-service="payments"] [data-instance="payments-c"]'), undefined, {
    timeout: 10_000,
  })
  t.pass("a service added to node-c's static file appears on node-a's page without a reload")
  t.same(
    await page.$$eval('[data-instance="payments-c"] .tag', (es) => es.map((e: any) => e.textContent as string)),
    ['blue', '<b>canary</b>'],
    'its tags show on its badge, as text',
  )
  t.match(
    await page.$eval('[data-instance="payments-c"]', (e) => e.title as string),
    /tags: blue, <b>canary<\/b> · region=us-east/,
    'its attributes in the title',
  )
  // It asks for an authorization service nobody runs: node-a's xDS warnings say what its Envoy does.
  await page.waitForFunction(
    () => /payments:10004: external authorization by "authz"/.test(document.getElementById('xds-list')?.textContent ?? ''),
    undefined,
    {
      timeout: 10_000,
    },
  )
  t.match(
    await page.textContent('#xds-list'),
    /no service authz is in the registry; start it, or fix shoal\.authz; its Envoy listener denies everything/,
    'the xDS warnings panel shows an authorization request that cannot be served',
  )

  // A typo in node-a's own static file: refused, the last good services stay, the page says so.
  writeFileSync(
    join(dir, 'node-a.json'),
    JSON.stringify({ services: [{ name: 'redis', ports: [{ port: 6379, servicePort: 10003 }], chek: {} }] }),
  )
  await page.waitForFunction(
    () => /chek: unknown field; did you mean "check"\?/.test(document.getElementById('source-list')?.textContent ?? ''),
    undefined,
    {
      timeout: 60_000,
    },
  )
  t.match(
    await page.textContent('#source-list'),
    /^static: \/.*node-a\.json: services\[0\]\.chek: .*; still announcing its last good 2 service/,
    'the sources panel names the file, the problem and what stays',
  )
  t.equal(statusOf('redis-a'), 'unknown', 'and redis-a is still served')

  // orders-b's backend goes away: its check fails, B publishes unhealthy, A's page recolours.
  await new Promise((r) => ordersB.close(r))
  await page.waitForFunction(() => document.querySelector('[data-instance="orders-b"]')?.classList.contains('st-unhealthy'), undefined, {
    timeout: 10_000,
  })
  t.pass('a status change on node-b recolours the instance')

  // node-c crashes (no leave): failure detection marks it dead and its instances disappear.
  await agents.get('node-c')!.stop({ leave: false })
  await page.waitForFunction(() => document.querySelector('tr[data-member="node-c"] .pill')?.textContent === 'dead', undefined, {
    timeout: 15_000,
  })
  t.pass('a crashed host shows dead in the members table')
  await page.waitForFunction(
    () => !document.querySelector('[data-instance="web-c"]') && !document.querySelector('[data-instance="payments-c"]'),
    undefined,
    { timeout: 5000 },
  )
  t.pass("a dead host's instances are not shown")
  await page.waitForFunction(() => document.querySelectorAll('#events li').length >= 3)

  await page.screenshot({ path: join(OUT, 'ui-live.png'), fullPage: true })
  t.same(pageErrors, [], 'no script errors in the page')
  t.equal(refusedLoads, 2, 'the only failed loads: the two drains refused for their token')
  t.ok(existsSync(join(OUT, 'ui-live.png')), 'screenshot saved under test-output/')
})
