/**
 * The previous release, built, for the test that runs it beside this one (README "Upgrades":
 * any two consecutive releases interoperate). `git archive` of that commit into a folder
 * under /tmp, its dependencies (this tree's node_modules when the lockfiles are identical, else
 * `npm ci`), `tsc`; the result is kept as /tmp/shoal-release-<commit> so that a rerun starts
 * at once, and rebuilt when missing or broken.
 *
 * @example
 *   const cli = previousRelease(t)      // undefined: t was skipped with the reason
 *   if (!cli) return
 *   await cliAgent(t, args, { cli })
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from './cli.js'

/**
 * The release before wire protocol 2 (issue 12: strict decoders, 13-field records): the parent
 * of the commit that introduced `GOSSIP_PROTOCOL = 2`, found in the history so that it stays
 * right across rebases and merges. When a release raises the protocol again, search for the
 * new line instead. SHOAL_PREVIOUS_RELEASE (a commit) overrides it.
 */
function previousReleaseCommit(): string | undefined {
  if (process.env.SHOAL_PREVIOUS_RELEASE) return process.env.SHOAL_PREVIOUS_RELEASE
  const log = run('git', ['log', '--format=%H', '-S', 'GOSSIP_PROTOCOL = 2', '--', 'src/gossip/messages.ts'], REPO_ROOT)
  const introduced = log.ok ? log.out.trim().split('\n').at(-1) : undefined
  if (!introduced) return undefined
  const parent = run('git', ['rev-parse', `${introduced}^`], REPO_ROOT)
  return parent.ok ? parent.out.trim() : undefined
}

interface SkipLike {
  skip(...args: any[]): unknown
}

function run(cmd: string, args: string[], cwd: string, input?: Buffer): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { cwd, input, encoding: 'buffer', maxBuffer: 1 << 28, timeout: 600_000 })
  return { ok: r.status === 0, out: `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`.slice(-3000) }
}

/** The path of the previous release's dist/cli.js, building it first if needed; undefined after skipping `t`. */
export function previousRelease(t: SkipLike): string | undefined {
  const commit = previousReleaseCommit()
  if (!commit || !run('git', ['cat-file', '-e', `${commit}^{commit}`], REPO_ROOT).ok) {
    t.skip(
      `needs the git history holding the previous release (${commit ?? 'the parent of the commit that introduced GOSSIP_PROTOCOL = 2'}): a full clone`,
    )
    return undefined
  }
  const cache = `/tmp/shoal-release-${commit.slice(0, 12)}`
  const cli = join(cache, 'dist', 'cli.js')
  const usable = () => existsSync(join(cache, '.built')) && existsSync(cli) && existsSync(join(cache, 'node_modules', 'msgpackr'))
  if (usable()) return cli
  rmSync(cache, { recursive: true, force: true })
  const dir = mkdtempSync(`${cache}.tmp-`)
  try {
    const archive = spawnSync('git', ['archive', commit], { cwd: REPO_ROOT, maxBuffer: 1 << 28 })
    if (archive.status !== 0) throw new Error(`git archive ${commit}: ${archive.stderr.toString()}`)
    const untar = run('tar', ['-x', '-C', dir], dir, archive.stdout)
    if (!untar.ok) throw new Error(`tar: ${untar.out}`)
    const sameLock = readFileSync(join(dir, 'package-lock.json'), 'utf8') === readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')
    if (sameLock) symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'))
    else {
      const ci = run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], dir)
      if (!ci.ok) throw new Error(`npm ci of ${commit}: ${ci.out}`)
    }
    const tsc = run(process.execPath, [join('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], dir)
    if (!tsc.ok) throw new Error(`tsc of ${commit}: ${tsc.out}`)
    const assets = run(process.execPath, [join('scripts', 'copy-assets.mjs')], dir)
    if (!assets.ok) throw new Error(`copy-assets of ${commit}: ${assets.out}`)
    writeFileSync(join(dir, '.built'), `${commit}\n`)
    try {
      renameSync(dir, cache)
    } catch {
      // Another run built it meanwhile: use theirs.
      rmSync(dir, { recursive: true, force: true })
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  return cli
}
