// Issue "Say why", item 10: what `npm test` installs as root, decided with fake `dpkg-query`,
// `apt-get`, `dockerd` and `docker` on PATH in a temporary folder (nothing is installed): an
// engine on PATH or installed as Docker CE packages is never replaced by Debian's docker.io,
// and the plan is printed before apt-get runs.
import { appendFileSync, chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { REPO_ROOT } from './lib/cli.js'

interface Provision {
  provision(
    debs: string[],
    opts: { env: NodeJS.ProcessEnv; isRoot: boolean; log: (line: string) => void },
  ): { install: string[]; notes: string[] }
}
const { provision } = (await import(pathToFileURL(join(REPO_ROOT, 'scripts', 'provision.mjs')).href)) as Provision

const DEBS = ['docker.io', 'busybox-static', 'iproute2', 'serf']

/** A PATH of fakes: dpkg-query reports `installed`, apt-get records its calls in the log, and dockerd/docker when asked. */
function fakes(t: Test, installed: string[], opts: { docker?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-provision-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const log = join(dir, 'calls.log')
  writeFileSync(log, '')
  const script = (name: string, body: string) => {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`)
    chmodSync(join(dir, name), 0o755)
  }
  // dpkg-query -W -f=${Status} PKG: the last argument is the package.
  script(
    'dpkg-query',
    `for pkg; do :; done
case ",${installed.join(',')}," in *",$pkg,"*) printf 'install ok installed' ;; *) echo "dpkg-query: no packages found matching $pkg" >&2; exit 1 ;; esac`,
  )
  script('apt-get', `echo "apt-get $*" >> '${log}'`)
  if (opts.docker) {
    script('dockerd', 'exit 0')
    script('docker', 'exit 0')
  }
  const said = (line: string) => appendFileSync(log, line + '\n')
  const run = () => provision(DEBS, { env: { PATH: dir }, isRoot: true, log: said })
  return { run, calls: () => readFileSync(log, 'utf8').trim().split('\n') }
}

t.test('dockerd and docker on PATH: Docker is present, docker.io not installed', async (t) => {
  const f = fakes(t, ['iproute2'], { docker: true })
  t.same(f.run().install, ['busybox-static', 'serf'])
  t.same(f.calls(), [
    '# Docker: dockerd and docker are on PATH; docker.io not installed',
    '# provisioning with apt-get install: busybox-static serf',
    'apt-get -o DPkg::Lock::Timeout=600 update -qq',
    'apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends busybox-static serf',
  ])
})

t.test('Docker CE installed as packages but not on PATH: never replaced', async (t) => {
  const f = fakes(t, ['docker-ce', 'containerd.io', 'busybox-static', 'iproute2', 'serf'])
  t.same(f.run().install, [])
  t.same(f.calls(), [
    '# Docker: docker-ce, containerd.io installed but dockerd or docker is not on PATH; docker.io not installed (it would replace that engine): put its binaries on PATH, or the Docker suites skip',
    '# provisioning: nothing to install',
  ])
})

t.test('no engine at all: docker.io is installed, the plan said first', async (t) => {
  const f = fakes(t, ['busybox-static'])
  t.same(f.run().install, ['docker.io', 'iproute2', 'serf'])
  t.same(f.calls(), [
    '# provisioning with apt-get install: docker.io iproute2 serf',
    'apt-get -o DPkg::Lock::Timeout=600 update -qq',
    'apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends docker.io iproute2 serf',
  ])
})

t.test('everything there: apt-get is never run', async (t) => {
  const f = fakes(t, ['docker.io', 'busybox-static', 'iproute2', 'serf'])
  t.same(f.run().install, [])
  t.same(f.calls(), ['# provisioning: nothing to install'])
})

t.test('not root, or no apt-get: nothing is run, the skip is said', async (t) => {
  const lines: string[] = []
  const dir = mkdtempSync(join(tmpdir(), 'shoal-provision-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.same(provision(DEBS, { env: { PATH: dir }, isRoot: true, log: (l) => lines.push(l) }).install, [])
  t.same(lines, ['# not root on Debian: system suites (dockerd, netns, serf, chromium) will be skipped'])
})
