/**
 * What a system-test lab (network namespaces, bridges, iptables rules, a private dockerd) leaves
 * on the machine is written down before it is made, so that it goes away however the test
 * process ends: its teardown, a signal (SIGTERM, SIGINT, SIGHUP, tap's SIGALRM at a timeout) or
 * SIGKILL, which no handler sees. The undo steps live in a manifest under /tmp/shoal-labs, run
 * by `undo()`, by the signal hook, or, when the process died, by its reaper (a detached
 * `node scripts/clean-labs.mjs --reap PID` holding a pipe from this process: the pipe closes when
 * the process dies, however it dies). By hand: `node scripts/clean-labs.mjs` (README "Tests").
 *
 * @example
 *   const lab = LabManifest.write('netns sh1a2b3c', steps, ['sh1a2b3c'])
 *   …make what the steps undo…
 *   lab.undo() // or let teardown, a signal or the reaper do it
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { SCRIPT, runSteps, writeManifest, type LabStep } from '../../scripts/clean-labs.mjs'

export type { LabStep }

let reaper: ChildProcess | undefined
const live = new Set<LabManifest>()

/** Starts this process's reaper once: a detached process that outlives us and cleans what we could not. */
function ensureReaper(): void {
  if (reaper) return
  reaper = spawn(process.execPath, [SCRIPT, '--reap', String(process.pid)], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] })
  reaper.unref()
  // Our end of its stdin must not keep this process alive either; it closes when we exit.
  ;(reaper.stdin as unknown as { unref(): void }).unref()
  reaper.stdin!.on('error', () => {})
  hookSignals()
}

let hooked = false
/**
 * On exit and on the signals a test process gets from tap or a shell (SIGTERM, SIGINT, SIGHUP;
 * SIGALRM is tap's timeout, SIGKILL follows it 0.5 s later, so the reaper finishes that case),
 * every live lab is undone before the process ends.
 */
function hookSignals(): void {
  if (hooked) return
  hooked = true
  process.on('exit', () => undoAll())
  for (const [sig, n] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const) {
    process.once(sig, () => {
      undoAll()
      process.exit(128 + n)
    })
  }
}

function undoAll(): void {
  for (const lab of [...live]) lab.undo()
}

export class LabManifest {
  private done = false
  private readonly beforeUndo: Array<() => void> = []

  readonly file: string

  private constructor(
    private readonly id: string,
    private readonly what: string,
    private readonly steps: LabStep[],
    private readonly claims: string[],
  ) {
    this.file = writeManifest(id, what, steps, claims)
  }

  /**
   * Writes the manifest of a lab about to be made: `steps` undo it (each may fail: a step whose
   * thing is already gone is done), `claims` are the names it owns (what `clean-labs.mjs
   * --orphans` must leave alone while this process runs).
   */
  static write(what: string, steps: LabStep[], claims: string[]): LabManifest {
    ensureReaper()
    const lab = new LabManifest(randomBytes(4).toString('hex'), what, [...steps], claims)
    live.add(lab)
    return lab
  }

  /** More undo steps, run after the others (write them before making what they undo). */
  addSteps(...steps: LabStep[]): void {
    this.steps.push(...steps)
    writeManifest(this.id, this.what, this.steps, this.claims)
  }

  /** Runs `fn` first when the lab is undone (its own children: faster than finding them by name). */
  onUndo(fn: () => void): void {
    this.beforeUndo.push(fn)
  }

  /** Undo the lab now: synchronous and idempotent. */
  undo(): void {
    if (this.done) return
    this.done = true
    live.delete(this)
    for (const fn of this.beforeUndo) {
      try {
        fn()
      } catch {
        // the steps below remove it anyway
      }
    }
    runSteps(this.steps)
    rmSync(this.file, { force: true })
  }
}
