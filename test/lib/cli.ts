/**
 * The built `shoal` command for tests: spawned CLIs run dist/cli.js (never the TypeScript
 * loader, which took over 15 s per start on a loaded machine), built on demand when missing
 * or older than src/.
 *
 * @example
 *   const r = await shoal(['members', '--help']).done   // { code: 0, stdout: 'Usage: shoal members ...', stderr: '' }
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The built CLI; SHOAL_SYSTEM_CLI points the suites at another build (no build step then). */
export const CLI = process.env.SHOAL_SYSTEM_CLI ?? join(REPO_ROOT, 'dist', 'cli.js')

function newestMtime(dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p))
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs)
  }
  return newest
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/**
 * Build dist/ when dist/cli.js is missing or older than any file in src/. Test files run
 * in parallel, so the build is serialised with a lock directory. A build with type errors
 * in someone's half-edited file still emits JavaScript; that is accepted when dist/cli.js
 * exists afterwards. Returns an error text when there is no usable CLI.
 */
export function ensureBuilt(): string | undefined {
  if (process.env.SHOAL_SYSTEM_CLI) return existsSync(CLI) ? undefined : `SHOAL_SYSTEM_CLI=${CLI} does not exist`
  const srcDir = join(REPO_ROOT, 'src')
  const fresh = (): boolean => existsSync(CLI) && statSync(CLI).mtimeMs >= newestMtime(srcDir)
  if (fresh()) return undefined
  // One lock per checkout: several checkouts (worktrees) on one machine build independently.
  const lock = join(tmpdir(), `shoal-build-${Buffer.from(REPO_ROOT).toString('base64url').slice(-24)}.lock`)
  const deadline = Date.now() + 180_000
  for (;;) {
    try {
      mkdirSync(lock)
      break
    } catch {
      // Another file is building; a lock older than 3 minutes is a crashed builder.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 180_000) rmdirSync(lock)
      } catch {
        /* gone already */
      }
      if (Date.now() > deadline) return 'timed out waiting for another build (lock ' + lock + ')'
      sleepSync(250)
    }
  }
  try {
    if (fresh()) return undefined
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    })
    if (!existsSync(CLI)) return `npm run build produced no dist/cli.js:\n${r.stdout}${r.stderr}`
    // The same second step as `npm run build`: the UI's static files next to the server.
    const copy = join(REPO_ROOT, 'scripts', 'copy-assets.mjs')
    if (existsSync(copy)) spawnSync(process.execPath, [copy], { cwd: REPO_ROOT, encoding: 'utf8' })
    return undefined
  } finally {
    try {
      rmdirSync(lock)
    } catch {
      /* ignore */
    }
  }
}

export interface CliRun {
  child: ChildProcess
  /** Resolves when the process exits, with everything it printed. */
  done: Promise<{ code: number | null; stdout: string; stderr: string }>
}

/** Run `node dist/cli.js ARGS` (built first if needed); `onStdout` sees the output so far. */
export function shoal(args: string[], opts: { onStdout?: (s: string) => void; env?: NodeJS.ProcessEnv; cwd?: string } = {}): CliRun {
  const why = ensureBuilt()
  if (why) throw new Error(`no built CLI: ${why}`)
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    cwd: opts.cwd ?? REPO_ROOT,
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => {
    stdout += d
    opts.onStdout?.(stdout)
  })
  child.stderr!.on('data', (d) => {
    stderr += d
  })
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((res) =>
    child.on('close', (code) => res({ code, stdout, stderr })),
  )
  return { child, done }
}

/** Run `node dist/cli.js ARGS` to completion, synchronously. */
export function shoalSync(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): { status: number | null; stdout: string; stderr: string } {
  const why = ensureBuilt()
  if (why) throw new Error(`no built CLI: ${why}`)
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    cwd: REPO_ROOT,
    env: opts.env ?? process.env,
    timeout: opts.timeoutMs ?? 120_000,
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/**
 * Run any command (docker, ip, ...) to its end: resolves its stdout, trimmed; rejects with
 * the command line, exit code and the tail of its stderr; SIGKILLed after `timeoutMs`.
 *
 * @example
 *   await runCommand('docker', ['-H', d.host, 'exec', id, 'wget', '-q', '-O', '-', url], { timeoutMs: 10_000 })
 */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { cwd: opts.cwd ?? REPO_ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const timer = setTimeout(() => c.kill('SIGKILL'), opts.timeoutMs ?? 120_000)
    c.stdout.on('data', (b) => (out += b))
    c.stderr.on('data', (b) => (err += b))
    c.on('error', reject)
    c.on('close', (code) => {
      clearTimeout(timer)
      if (code === 0) resolve(out.trim())
      else reject(new Error(`${cmd} ${args.join(' ')} (exit ${code}): ${err.trim().slice(-2000)}`))
    })
  })
}
