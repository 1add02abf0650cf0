#!/usr/bin/env node
// The test command: provision the real components (as root on Debian), type-check,
// run every tap file, and end with one plain line `N passed, N failed, N skipped`.
// With CI=true a skipped test counts as a failure: CI must run everything.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { relative } from 'node:path'
import { cpuSeconds } from './cpu-at-exit.mjs'
import { provision } from './provision.mjs'
import { shardFiles, testFiles } from './test-shards.mjs'

const ci = process.env.CI === 'true' || process.env.CI === '1'
const args = process.argv.slice(2)
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

// Debian packages the system suites drive for real. Installed once here, not per file,
// so that parallel test files never fight over the apt lock; what is installed and what is
// left alone (an existing Docker engine) is decided in provision.mjs.
const debs = ['docker.io', 'busybox-static', 'iproute2', 'iptables', 'serf', 'chromium', 'bpftrace', 'dnsutils', 'python3-grpcio']
debs.push('prometheus') // promtool checks /metrics; the server evaluates the Grafana dashboard (issue 16)

/**
 * One check run beside the tap files, counted as one test: `tsc --noEmit`, `npm run lint`.
 * Resolves to `{ ok, text }`: its TAP line, with its output when it failed, printed after the tap files.
 */
function check(what, args) {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    c.stderr.on('data', (d) => (out += d))
    c.on('close', (code) => {
      if (code === 0) return resolve({ ok: true, text: `ok - ${what}` })
      const lines = out.split('\n').map((l) => '  # ' + l)
      resolve({ ok: false, text: `not ok - ${what}\n${lines.join('\n')}` })
    })
  })
}

// SHOAL_CPU_REPORT=FILE: every Node process of the run appends its CPU seconds to FILE
// (scripts/cpu-at-exit.mjs), and the run ends with the test files that cost the most CPU.
const cpuReport = process.env.SHOAL_CPU_REPORT
const env = { ...process.env, SHOAL_TEST_ROOT: isRoot ? '1' : '0' }
if (cpuReport) env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import=${new URL('./cpu-at-exit.mjs', import.meta.url).pathname}`.trim()

provision(debs)
await buildTapOnce()
// The checks run beside the tap files: they need only the CPU the suite leaves idle while it waits.
const checks = Promise.all([
  check('tsc --noEmit', ['node_modules/typescript/bin/tsc', '--noEmit', '-p', '.']),
  check('npm run lint', ['scripts/lint.mjs']),
])

const summary = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?(?:, todo: (\d+))?/
const fileLine = /^(?:not )?ok \d+ - (\S+\.test\.ts) # time=([\d.]+)ms/

/**
 * One tap process over `files` (all of `.taprc`'s when empty). Its output goes to stdout one
 * top-level file at a time, so that shards running at once do not mix their lines. Resolves to
 * its counts and each file's seconds.
 */
function runTap(tapArgs, files) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', '--reporter=tap', ...tapArgs, ...files], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    })
    const seconds = {}
    let block = ''
    let partial = ''
    let tail = ''
    child.stdout.on('data', (chunk) => {
      const lines = (partial + chunk.toString()).split('\n')
      partial = lines.pop()
      for (const l of lines) {
        block += l + '\n'
        tail = (tail + l + '\n').slice(-4096)
        const m = fileLine.exec(l)
        if (m) seconds[m[1]] = Number(m[2]) / 1000
        if (m || l.startsWith('# {') || l.startsWith('# time=')) {
          process.stdout.write(block)
          block = ''
        }
      }
    })
    child.on('close', (code) => {
      process.stdout.write(block + partial)
      const m = summary.exec(tail + partial)
      resolve(
        m
          ? { code, pass: +(m[2] ?? 0), fail: +(m[3] ?? 0), skip: +(m[4] ?? 0), seconds }
          : { code, pass: 0, fail: 1, skip: 0, seconds, unread: true },
      )
    })
  })
}

/**
 * tap runs its test files with a Test class built for `.taprc`'s plugin list, and rebuilds that
 * class (node_modules/@tapjs/test/test-built) when the list differs, as after `npm ci` with our
 * `!@tapjs/typescript`. Several tap processes started at once each rebuilt it over the others'
 * files, and every test file then failed to load (`Cannot find module .../test-built/...`: the
 * CI failure of stop 26). So the build runs here, once, before any tap process starts.
 */
async function buildTapOnce() {
  let same = false
  try {
    const [{ signature }, { TapConfig }] = await Promise.all([import('@tapjs/test'), import('@tapjs/config')])
    same = (await TapConfig.load()).pluginSignature === signature
  } catch (err) {
    // A build left half done (interrupted) does not load: build it again.
    console.log(`# tap: its Test class does not load (${String(err?.message ?? err).split('\n')[0]})`)
  }
  if (same) return
  console.log('# tap: building its Test class for the plugins in .taprc (once, before the test files)')
  const r = spawnSync(process.execPath, ['node_modules/tap/dist/esm/run.mjs', 'build'], { stdio: ['ignore', 'inherit', 'inherit'] })
  if (r.status !== 0) {
    console.log(`not ok - tap build exited with ${r.status ?? r.signal}\n0 passed, 1 failed, 0 skipped`)
    process.exit(1)
  }
}

// Files named on the command line: one tap run over them, as tap does. Otherwise every file,
// in SHOAL_TEST_SHARDS (default 3) tap processes at once, each running one file at a time.
const named = args.some((a) => /\.test\.ts$|^test\//.test(a))
const durationsFile = 'scripts/test-durations.json'
let runs
if (named) runs = [runTap(args, [])]
else {
  const durations = JSON.parse(readFileSync(durationsFile, 'utf8'))
  const shards = shardFiles(testFiles(), durations, Math.max(1, Number(process.env.SHOAL_TEST_SHARDS) || 3))
  for (const [i, g] of shards.entries())
    console.log(`# shard ${i + 1} of ${shards.length}: ${g.files.length} files, about ${Math.round(g.seconds)} s by ${durationsFile}`)
  runs = shards.map((g) => runTap(['--jobs=1', ...args], g.files))
}

Promise.all(runs).then(async (results) => {
  let pass = 0,
    fail = 0,
    skip = 0
  for (const r of results) {
    pass += r.pass
    fail += r.fail
    skip += r.skip
    if (r.unread) console.log('# could not read a tap summary')
    if (r.code !== 0 && r.fail === 0) fail += 1
  }
  if (!named && process.env.SHOAL_SAVE_DURATIONS === '1') {
    const seconds = Object.assign({}, ...results.map((r) => r.seconds))
    const sorted = Object.fromEntries(
      Object.keys(seconds)
        .sort()
        .map((k) => [k, Math.round(seconds[k] * 10) / 10]),
    )
    writeFileSync(durationsFile, JSON.stringify(sorted, null, 2) + '\n')
    console.log(`# wrote ${durationsFile}`)
  }
  for (const { ok, text } of await checks) {
    console.log(text)
    if (ok) pass += 1
    else fail += 1
  }
  if (cpuReport) printCpuReport(cpuReport)
  if (ci && skip > 0) console.log(`# CI=true: ${skip} skipped test(s) count as failures`)
  console.log(`${pass} passed, ${fail} failed, ${skip} skipped`)
  process.exit(fail > 0 || (ci && skip > 0) ? 1 : 0)
})

/** The CPU seconds SHOAL_CPU_REPORT's lines give per test file and per check, largest first. */
function printCpuReport(file) {
  const per = new Map()
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const { argv, own, children } = JSON.parse(line)
    // A test file's process runs the file itself (argv[0]); tap's runners, which name every file, are left out.
    const script = relative(process.cwd(), argv[0] ?? '')
    const name = /\.test\.ts$/.test(script) ? script : /tsc$|lint\.mjs$/.test(script) ? argv.join(' ') : undefined
    if (name) per.set(name, (per.get(name) ?? 0) + own + children)
  }
  const all = cpuSeconds().children
  const rows = [...per].sort((a, b) => b[1] - a[1])
  const named = rows.reduce((s, [, v]) => s + v, 0)
  console.log(`# CPU: ${Math.round(all)} s in all (the tap shards and checks), ${Math.round(named)} s in the ${rows.length} below`)
  for (const [name, v] of rows.slice(0, 60)) console.log(`#   ${v.toFixed(1).padStart(7)} s  ${name}`)
}
