// `npm start` and `npm run demo` build first, but only when dist/ is older than what it is
// built from (a file under src/, package.json or a tsconfig): a fresh checkout after `npm ci`
// (which builds) starts at once instead of compiling the whole tree again.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

function newest(path) {
  const s = statSync(path)
  if (!s.isDirectory()) return s.mtimeMs
  return readdirSync(path).reduce((m, name) => Math.max(m, newest(join(path, name))), s.mtimeMs)
}

const built = existsSync('dist/cli.js') ? statSync('dist/cli.js').mtimeMs : -1
const sources = Math.max(newest('src'), ...['package.json', 'tsconfig.json', 'tsconfig.build.json'].map((f) => statSync(f).mtimeMs))
if (built < sources) {
  const r = spawnSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' })
  process.exit(r.status ?? 1)
}
