// What `npm test` installs with apt before the system suites run (as root on Debian), decided
// here so that it can be tested with fake `dpkg-query` and `apt-get` on PATH
// (test/scripts-provision.test.ts):
//
// - a package counts as present when dpkg says "install ok installed";
// - Docker counts as present when `dockerd` and `docker` are both on PATH, whatever package
//   brought them (Docker CE, Debian's docker.io, a static build), and an engine installed as
//   packages (docker-ce, containerd.io, moby-engine, ...) is never replaced: Debian's docker.io
//   would pull in `containerd`, which conflicts with Docker CE's `containerd.io`;
// - the plan is printed before anything is installed.
import { spawnSync } from 'node:child_process'
import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, join } from 'node:path'

/** The Debian package that brings a Docker engine when none is there. */
export const DOCKER_DEB = 'docker.io'
/** Packages of another Docker engine: when one is installed, DOCKER_DEB is never installed beside it. */
export const ENGINE_DEBS = ['docker-ce', 'docker-ce-cli', 'containerd.io', 'moby-engine', 'moby-cli', 'docker-ee']

/** True when `cmd` is an executable file in one of PATH's directories. */
export function onPath(cmd, path = process.env.PATH ?? '') {
  return path
    .split(delimiter)
    .filter(Boolean)
    .some((dir) => {
      const p = join(dir, cmd)
      try {
        accessSync(p, constants.X_OK)
        return statSync(p).isFile()
      } catch {
        return false
      }
    })
}

function installed(pkg, env) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { env, encoding: 'utf8' })
  return r.status === 0 && (r.stdout ?? '').includes('install ok installed')
}

/**
 * What to install of `debs`: `{ install, notes }`, notes saying what was left out and why.
 * `env.PATH` is where `dockerd`, `docker` and `dpkg-query` are looked for.
 */
export function plan(debs, env = process.env) {
  const notes = []
  const install = []
  for (const pkg of debs) {
    if (pkg === DOCKER_DEB) {
      if (onPath('dockerd', env.PATH) && onPath('docker', env.PATH)) {
        notes.push(`Docker: dockerd and docker are on PATH; ${DOCKER_DEB} not installed`)
        continue
      }
      const engine = ENGINE_DEBS.filter((p) => installed(p, env))
      if (engine.length > 0) {
        notes.push(
          `Docker: ${engine.join(', ')} installed but dockerd or docker is not on PATH; ${DOCKER_DEB} not installed (it would replace that engine): put its binaries on PATH, or the Docker suites skip`,
        )
        continue
      }
    }
    if (!installed(pkg, env)) install.push(pkg)
  }
  return { install, notes }
}

/** Seconds apt-get waits for another apt's lock (the dpkg frontend lock) before it gives up. */
export const LOCK_WAIT_S = 600

/**
 * Install what `plan` says, as root on a host with apt-get; print the plan first. `log` gets
 * every line said (default console.log); apt-get's own output goes to this process's stdout.
 */
export function provision(debs, { env = process.env, isRoot = process.getuid?.() === 0, log = console.log } = {}) {
  if (!isRoot || !onPath('apt-get', env.PATH)) {
    log('# not root on Debian: system suites (dockerd, netns, serf, chromium) will be skipped')
    return { install: [], notes: [] }
  }
  const p = plan(debs, env)
  for (const n of p.notes) log(`# ${n}`)
  if (p.install.length === 0) {
    log('# provisioning: nothing to install')
    return p
  }
  log(`# provisioning with apt-get install: ${p.install.join(' ')}`)
  const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' }
  // A fresh machine often runs apt at boot (cloud-init, unattended-upgrades): wait up to 10
  // minutes for its lock rather than fail at once, which skipped every system suite in one CI
  // run ("Could not get lock /var/lib/dpkg/lock-frontend"). DPkg::Lock::Timeout: apt 1.9.11+.
  const lock = ['-o', `DPkg::Lock::Timeout=${LOCK_WAIT_S}`]
  const upd = spawnSync('apt-get', [...lock, 'update', '-qq'], { stdio: 'inherit', env: aptEnv })
  if (upd.status !== 0) log('# apt-get update failed')
  const inst = spawnSync('apt-get', [...lock, 'install', '-y', '-qq', '--no-install-recommends', ...p.install], {
    stdio: 'inherit',
    env: aptEnv,
  })
  if (inst.status !== 0) log(`# apt-get install failed (exit ${inst.status}); dependent suites will fail or skip`)
  return p
}
