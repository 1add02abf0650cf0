/**
 * Every dependency in package.json has a row in the README's Dependencies table saying why it
 * is there, and every row names a real dependency (the brief: "say in the README why each
 * dependency is there").
 */
import t from 'tap'
import { readFileSync } from 'node:fs'

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies?: object; devDependencies?: object }
const readme = readFileSync('README.md', 'utf8')

t.test("the README's Dependencies table and package.json list the same packages", async (t) => {
  const start = readme.indexOf('\n## Dependencies\n')
  t.ok(start >= 0, 'the README has a Dependencies section')
  const end = readme.indexOf('\n## ', start + 5)
  const rows = readme
    .slice(start, end)
    .split('\n')
    .filter((l) => l.startsWith('| `'))
  const named = new Set(rows.flatMap((r) => [...(r.split('|')[1] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!)))
  const declared = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})]
  for (const d of declared) t.ok(named.has(d), `${d} has a row saying why it is there`)
  for (const n of named) t.ok(declared.includes(n), `${n} in the table is a dependency of package.json`)
  for (const r of rows) t.ok((r.split('|')[2] ?? '').trim().length > 10, `the row says why: ${r}`)
})
