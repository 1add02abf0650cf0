// The web UI in a real headless Chromium: it loads, shows hosts x services from the
// snapshot, and shows a newly added service, a status change and a member state change
// without a reload (fed by /api/watch). Saves screenshots under test-output/.
// For now against one HttpServer over an in-test catalog; the lead moves it onto a
// 3-agent cluster once the agent wiring lands.
import t from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { record, startHarness } from '../http-fixture.js'

// The functions given to page.waitForFunction and $eval run in the page, where it exists.
declare const document: any

const CHROMIUM = '/usr/bin/chromium'
const OUT = join(process.cwd(), 'test-output')
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (scripts/test.mjs installs Debian "chromium" when run as root)`

t.test('the UI shows the catalog and follows changes live', { skip }, async (t) => {
  const { chromium } = await import('playwright-core')
  const h = await startHarness(t)
  const svcPort = (port: number, servicePort: number, ip: string) => [{ type: 'tcp' as const, port, servicePort, ip }]
  h.catalog.addHost('node-a')
  h.catalog.addHost('node-b')
  h.catalog.addHost('node-c')
  for (const [n, s] of [['node-a', 'alive'], ['node-b', 'alive'], ['node-c', 'alive']] as const) h.membership.set(n, s)
  h.catalog.put(record({ id: '3f2a9c0d1e4b', name: 'web', host: 'node-a', image: 'shop/web:2.1', ports: svcPort(32768, 10001, '10.0.0.1') }))
  h.catalog.put(record({ id: '9b1e77a0c2d3', name: 'web', host: 'node-b', image: 'shop/web:2.1', ports: svcPort(32771, 10001, '10.0.0.2') }))
  h.catalog.put(record({ id: 'c04d11e2f9a8', name: 'web', host: 'node-c', image: 'shop/web:2.1', status: 'draining', ports: svcPort(32770, 10001, '10.0.0.3') }))
  h.catalog.put(record({ id: '51aa08e3b7c1', name: 'orders', host: 'node-b', proxyMode: 'grpc', ports: svcPort(50051, 10002, '10.0.0.2') }))
  h.catalog.put(record({ id: 'e7c3d2b1a0f9', name: 'orders', host: 'node-c', proxyMode: 'grpc', status: 'unhealthy', ports: svcPort(50051, 10002, '10.0.0.3') }))
  h.catalog.put(record({ id: '0d9e8f7a6b5c', name: 'redis', host: 'node-a', proxyMode: 'tcp', status: 'unknown', ports: svcPort(6379, 10003, '10.0.0.1') }))
  h.catalog.addHost('node-d')
  h.catalog.put(record({ id: 'dead0000beef', name: 'web', host: 'node-d', ports: svcPort(32769, 10001, '10.0.0.4') }))
  h.catalog.setHostState('node-d', 'dead')
  h.membership.set('node-d', 'dead', 'dead')

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } })
  const pageErrors: string[] = []
  page.on('pageerror', (e) => pageErrors.push(e.message))
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()) })

  await page.goto(h.url + '/')
  await page.waitForFunction(() => document.querySelectorAll('#grid-body tr').length === 3 && document.getElementById('conn-text')?.textContent === 'live')
  const rows = await page.$$eval('#grid-body tr', (trs) => trs.map((tr) => tr.getAttribute('data-service')))
  t.same(rows, ['orders', 'redis', 'web'], 'services from the snapshot, sorted')
  const heads = await page.$$eval('#grid-head th.host .host-name', (ths) => ths.map((th) => th.textContent))
  t.same(heads, ['node-a', 'node-b', 'node-c', 'node-d'], 'one column per host')
  t.equal(await page.$('[data-instance="dead0000beef"]'), null, "a dead host's instances are not shown")
  t.equal(await page.textContent('#cluster'), 'test')
  t.match(await page.textContent('tr[data-service="web"]'), /:10001/, 'the ServicePort is shown')
  t.ok(await page.$eval('[data-instance="c04d11e2f9a8"]', (e) => e.classList.contains('st-draining')), 'draining has its own colour')

  mkdirSync(OUT, { recursive: true })
  await page.screenshot({ path: join(OUT, 'ui-initial.png'), fullPage: true })

  // Changes after load arrive over /api/watch, no reload.
  h.catalog.put(record({ id: 'aa11bb22cc33', name: 'payments', host: 'node-c', ports: svcPort(8443, 10004, '10.0.0.3') }))
  await page.waitForFunction(() => !!document.querySelector('tr[data-service="payments"] [data-instance="aa11bb22cc33"]'), undefined, { timeout: 5000 })
  t.pass('a newly added service appears without a reload')

  h.catalog.put(record({ id: '0d9e8f7a6b5c', name: 'redis', host: 'node-a', proxyMode: 'tcp', status: 'alive', ports: svcPort(6379, 10003, '10.0.0.1') }))
  await page.waitForFunction(() => document.querySelector('[data-instance="0d9e8f7a6b5c"]')?.classList.contains('st-alive'))
  t.pass('a status change recolours the instance')

  h.membership.set('node-b', 'suspect', 'suspect')
  await page.waitForFunction(() => document.querySelector('tr[data-member="node-b"] .pill')?.textContent === 'suspect')
  t.pass('a member state change shows in the members table')
  await page.waitForFunction(() => document.querySelectorAll('#events li').length >= 3)

  await page.screenshot({ path: join(OUT, 'ui-live.png'), fullPage: true })
  t.same(pageErrors, [], 'no script errors in the page')
  t.ok(existsSync(join(OUT, 'ui-live.png')), 'screenshot saved under test-output/')
})
