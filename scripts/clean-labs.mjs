#!/usr/bin/env node
// Removes what the system tests' labs left behind: network namespaces, bridges and veths, the
// iptables FORWARD rule, private dockerd engines (their containers, containerd, mounts) and
// their temporary folders. Every lab writes a manifest before it makes anything
// (/tmp/shoal-labs/*.json: its owner process and the steps that undo it), and removes it once it
// has cleaned up. A test process killed with SIGKILL cannot clean up; its reaper (started by the
// first lab of each process, `--reap PID`) notices the death and runs the steps instead.
//
//   node scripts/clean-labs.mjs             labs whose owner process is gone (safe while tests run)
//   node scripts/clean-labs.mjs --all       every lab in a manifest, running ones too
//   node scripts/clean-labs.mjs --orphans   also anything with Shoal's prefixes that no running lab
//                                           claims (labs of a release before manifests); run it
//                                           only when no test runs
//   --dry-run                               print what would be removed, remove nothing
//
// Shoal's prefixes: namespaces `sh<6 hex>-<i>`, links `sh<6 hex>br`, `sh<6 hex>p<i>`,
// `sh<6 hex>-<i>`, `shl<6 hex>` (dockerd bridges) and `shg<6 hex>` (their swarm gateway bridges), FORWARD rules on `sh<6 hex>br`, folders
// /tmp/shoal-netns-* and /tmp/shd-* (and the processes that name them).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Where labs keep their manifests. */
export const MANIFEST_DIR = join(tmpdir(), 'shoal-labs')
export const SCRIPT = fileURLToPath(import.meta.url)

const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

function run(argv) {
  return spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 60_000 })
}

function pids() {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p))
}

function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')
  } catch {
    return undefined // exited while we looked
  }
}

function kill(pid, signal) {
  try {
    process.kill(Number(pid), 'SIGCONT')
    process.kill(Number(pid), signal)
  } catch {
    // gone
  }
}

/** Processes (not this one) whose command line contains `text`. */
function processesNaming(text) {
  return pids().filter((p) => Number(p) !== process.pid && cmdline(p)?.includes(text))
}

/** The start time of process `pid` (clock ticks since boot, /proc/PID/stat field 22), or undefined when it is gone. */
export function startTime(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

/**
 * Runs the undo steps of a lab, synchronously, each allowed to fail (a step whose thing is
 * already gone is done). Steps:
 *   { run: [argv…] }                       a command
 *   { netnsKill: ns }                      SIGKILL every process in namespace ns
 *   { stop: text, ms }                     SIGTERM the processes naming text, wait up to ms for them to exit
 *   { killNaming: text }                   SIGKILL every process whose command line contains text
 *   { umountUnder: dir }                   lazy-unmount every mount at or under dir
 *   { rm: path }                           remove a file or folder
 */
export function runSteps(steps, log = () => {}) {
  for (const s of steps) {
    if (s.run) {
      const r = run(s.run)
      log(`${s.run.join(' ')}${r.status === 0 ? '' : ` (exit ${r.status})`}`)
    } else if (s.netnsKill) {
      const out = run(['ip', 'netns', 'pids', s.netnsKill]).stdout ?? ''
      for (const p of out.split(/\s+/).filter(Boolean)) kill(p, 'SIGKILL')
    } else if (s.stop) {
      const found = processesNaming(s.stop)
      for (const p of found) kill(p, 'SIGTERM')
      const end = Date.now() + (s.ms ?? 10_000)
      while (found.some((p) => existsSync(`/proc/${p}`) && !zombie(p)) && Date.now() < end) sleepSync(50)
      if (found.length) log(`stopped ${found.length} process(es) naming ${s.stop}`)
    } else if (s.killGroup) {
      // The process group the pid leads: while its leader is the same process, or once the
      // leader has exited (a pid is not reused as a group id while that group has members).
      const now = startTime(s.killGroup)
      if (now === undefined || now === s.start) kill(String(-s.killGroup), 'SIGKILL')
    } else if (s.killPid) {
      // Only the process it was: a pid another process took since has another start time.
      if (startTime(s.killPid) === s.start) kill(String(s.killPid), 'SIGKILL')
    } else if (s.killNaming) {
      const found = processesNaming(s.killNaming)
      for (const p of found) kill(p, 'SIGKILL')
      if (found.length) log(`killed ${found.length} process(es) naming ${s.killNaming}`)
    } else if (s.umountUnder) {
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[4])
        .filter((m) => !!m && (m === s.umountUnder || m.startsWith(s.umountUnder + '/')))
        .sort((a, b) => b.length - a.length)
      for (const m of mounts) run(['umount', '-l', m])
    } else if (s.rm) {
      rmSync(s.rm, { recursive: true, force: true })
    }
  }
}

function zombie(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

/** Every manifest: { file, owner, ownerStart, what, steps }. */
export function manifests() {
  let names = []
  try {
    names = readdirSync(MANIFEST_DIR).filter((n) => n.endsWith('.json'))
  } catch {
    return []
  }
  const out = []
  for (const n of names) {
    try {
      out.push({ ...JSON.parse(readFileSync(join(MANIFEST_DIR, n), 'utf8')), file: join(MANIFEST_DIR, n) })
    } catch {
      // half written by a process that died in writeFileSync: nothing was made yet
      rmSync(join(MANIFEST_DIR, n), { force: true })
    }
  }
  return out
}

/** Is the process that wrote manifest `m` still running (the same process, not a reused pid)? */
export function ownerAlive(m) {
  return startTime(m.owner) === m.ownerStart
}

/** Undo one lab and drop its manifest. */
export function cleanLab(m, log = () => {}) {
  log(`cleaning ${m.what} (owner ${m.owner}${ownerAlive(m) ? ', running' : ', gone'})`)
  runSteps(m.steps, (line) => log(`  ${line}`))
  rmSync(m.file, { force: true })
}

/** Names with Shoal's prefixes that no manifest of a running owner claims. */
function orphans(claimed) {
  const found = []
  const isClaimed = (s) => claimed.some((c) => s.includes(c))
  for (const line of (run(['ip', 'netns', 'list']).stdout ?? '').split('\n')) {
    const ns = line.split(' ')[0]
    if (ns && /^sh[0-9a-f]{6}-\d+$/.test(ns) && !isClaimed(ns))
      found.push({ what: `netns ${ns}`, steps: [{ netnsKill: ns }, { run: ['ip', 'netns', 'del', ns] }] })
  }
  for (const line of (run(['ip', '-o', 'link']).stdout ?? '').split('\n')) {
    const name = /^\d+: ([^:@]+)/.exec(line)?.[1]
    if (name && /^(sh[0-9a-f]{6}(br|p\d+|-\d+)|sh[lg][0-9a-f]{6})$/.test(name) && !isClaimed(name))
      found.push({ what: `link ${name}`, steps: [{ run: ['ip', 'link', 'del', name] }] })
  }
  for (const line of (run(['iptables', '-w', '-S', 'FORWARD']).stdout ?? '').split('\n')) {
    const m = /^-A FORWARD -i (sh[0-9a-f]{6}br) -o \1 -j ACCEPT$/.exec(line)
    if (m && !isClaimed(m[1]))
      found.push({
        what: `FORWARD rule for ${m[1]}`,
        steps: [{ run: ['iptables', '-w', '-D', 'FORWARD', '-i', m[1], '-o', m[1], '-j', 'ACCEPT'] }],
      })
  }
  for (const n of readdirSync(tmpdir())) {
    const dir = join(tmpdir(), n)
    if (!/^(shoal-netns-sh[0-9a-f]{6}-|shd-)/.test(n) || isClaimed(dir)) continue
    const steps = n.startsWith('shd-') ? [{ stop: dir, ms: 15_000 }, { killNaming: dir }, { umountUnder: dir }, { rm: dir }] : [{ rm: dir }]
    found.push({ what: `${n.startsWith('shd-') ? 'dockerd folder' : 'lab folder'} ${dir}`, steps })
  }
  return found
}

/** `--reap PID`: wait until the owner closes our stdin (it exited, however it died), then clean its labs. */
function reap(owner) {
  process.stdin.resume()
  process.stdin.on('error', () => {})
  process.stdin.on('close', () => {
    for (const m of manifests()) if (String(m.owner) === String(owner)) cleanLab(m)
    process.exit(0)
  })
}

function main(argv) {
  const reapAt = argv.indexOf('--reap')
  if (reapAt >= 0) return reap(argv[reapAt + 1])
  const all = argv.includes('--all')
  const dry = argv.includes('--dry-run')
  const log = (line) => console.log(line)
  const labs = manifests()
  for (const m of labs) {
    if (!all && ownerAlive(m)) {
      log(`keeping ${m.what}: its owner ${m.owner} runs (--all removes it too)`)
      continue
    }
    if (dry) log(`would clean ${m.what}: ${JSON.stringify(m.steps)}`)
    else cleanLab(m, log)
  }
  if (argv.includes('--orphans')) {
    // What running labs claim: their namespaces, links and folders are named by their steps.
    const claimed = manifests()
      .filter(ownerAlive)
      .flatMap((m) => m.claims ?? [])
    for (const o of orphans(claimed)) {
      if (dry) log(`would remove ${o.what}`)
      else {
        log(`removing ${o.what}`)
        runSteps(o.steps)
      }
    }
  }
}

/** Writes a lab's manifest (before it makes anything) and starts this process's reaper once. Returns the manifest's path. */
export function writeManifest(id, what, steps, claims) {
  mkdirSync(MANIFEST_DIR, { recursive: true })
  const file = join(MANIFEST_DIR, `${process.pid}-${id}.json`)
  writeFileSync(file, JSON.stringify({ owner: process.pid, ownerStart: startTime(process.pid), what, claims, steps }, null, 1))
  return file
}

if (process.argv[1] === SCRIPT) main(process.argv.slice(2))
