#!/usr/bin/env node
// The test command: provision the real components (as root on Debian), type-check,
// run every tap file, and end with one plain line `N passed, N failed, N skipped`.
// With CI=true a skipped test counts as a failure: CI must run everything.
import { spawn, spawnSync } from 'node:child_process'
import { provision } from './provision.mjs'

const ci = process.env.CI === 'true' || process.env.CI === '1'
const args = process.argv.slice(2)
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

// Debian packages the system suites drive for real. Installed once here, not per file,
// so that parallel test files never fight over the apt lock; what is installed and what is
// left alone (an existing Docker engine) is decided in provision.mjs.
const debs = ['docker.io', 'busybox-static', 'iproute2', 'iptables', 'serf', 'chromium', 'bpftrace', 'dnsutils', 'python3-grpcio']
debs.push('prometheus') // promtool checks /metrics; the server evaluates the Grafana dashboard (issue 16)

/** One check run before the tap files, counted as one test: `tsc --noEmit`, `npm run lint`. */
function check(what, args) {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' })
  if (r.status === 0) {
    console.log(`ok - ${what}`)
    return true
  }
  console.log(
    `not ok - ${what}\n` +
      (r.stdout + r.stderr)
        .split('\n')
        .map((l) => '  # ' + l)
        .join('\n'),
  )
  return false
}

provision(debs)
const checks = [
  check('tsc --noEmit', ['node_modules/typescript/bin/tsc', '--noEmit', '-p', '.']),
  check('npm run lint', ['scripts/lint.mjs']),
]

const child = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', '--reporter=tap', ...args], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, SHOAL_TEST_ROOT: isRoot ? '1' : '0' },
})
let tail = ''
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString()).slice(-4096)
})
child.on('close', (code) => {
  const m = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?(?:, todo: (\d+))?/.exec(tail)
  let total = 0,
    pass = 0,
    fail = 0,
    skip = 0
  if (m) {
    total = +m[1]
    pass = +(m[2] ?? 0)
    fail = +(m[3] ?? 0)
    skip = +(m[4] ?? 0)
  } else {
    fail = 1
    console.log('# could not read tap summary')
  }
  for (const ok of checks) {
    if (ok) pass += 1
    else fail += 1
  }
  if (code !== 0 && fail === 0) fail = 1
  if (ci && skip > 0) console.log(`# CI=true: ${skip} skipped test(s) count as failures`)
  console.log(`${pass} passed, ${fail} failed, ${skip} skipped`)
  void total
  process.exit(fail > 0 || (ci && skip > 0) ? 1 : 0)
})
