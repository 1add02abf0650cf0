// Issue 16: every warn and error line the agent can write says what went wrong, which input,
// and what to do. The mechanism is src/log.ts `logProblem` with its three-part Problem; this
// file reads every source file of src/ (TypeScript's parser) and fails on a `.warn(`,
// `.error(` or `.fatal(` call on a logger that bypasses it, and on a problem written out with
// an empty part (the type checker makes the three parts present).
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'
import { logProblem, problemMessage } from '../src/log.js'
import { capturedLogger } from './lib/log.js'

const SRC = join(process.cwd(), 'src')

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : []
  })
}

interface Site {
  where: string
  text: string
}

/** Direct logger calls at warn level or above, and logProblem calls whose problem lacks a part. */
function scan(files: Array<[file: string, text: string]>): { direct: Site[]; incomplete: Site[]; problems: number } {
  const direct: Site[] = []
  const incomplete: Site[] = []
  let problems = 0
  for (const [file, text] of files) {
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true)
    const at = (n: ts.Node): Site => ({
      where: `${relative(process.cwd(), file)}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`,
      text: n.getText().slice(0, 120),
    })
    const visit = (n: ts.Node): void => {
      if (ts.isCallExpression(n)) {
        const callee = n.expression
        if (ts.isPropertyAccessExpression(callee) && ['warn', 'error', 'fatal'].includes(callee.name.text)) {
          // A logger: this.log, this.c.log, this.logger, this.components.logger, log, logger, ...
          if (/(^|\.)(log|logger|[a-z]*Log|[a-z]*Logger)$/.test(callee.expression.getText())) direct.push(at(n))
        }
        if (ts.isIdentifier(callee) && callee.text === 'logProblem') problems++
      }
      // A Problem written out (in a logProblem call or in a function that builds one): the
      // type checker makes its three parts present; here none may be an empty text.
      if (ts.isObjectLiteralExpression(n)) {
        const parts = new Map<string, ts.Expression>()
        for (const prop of n.properties) {
          if (ts.isPropertyAssignment(prop) && ts.isIdentifier(prop.name)) parts.set(prop.name.text, prop.initializer)
          else if (ts.isShorthandPropertyAssignment(prop)) parts.set(prop.name.text, prop.name)
        }
        const empty = (e: ts.Expression | undefined) =>
          e === undefined || ((ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) && e.text.trim() === '')
        if (parts.has('what') && parts.has('fix') && ['what', 'input', 'fix'].some((k) => empty(parts.get(k)))) incomplete.push(at(n))
      }
      ts.forEachChild(n, visit)
    }
    visit(sf)
  }
  return { direct, incomplete, problems }
}

t.test('every warn and error line of src/ goes through logProblem, with its three parts', async (t) => {
  const files = sources(SRC)
    .filter((f) => f !== join(SRC, 'log.ts'))
    .map((f): [string, string] => [f, readFileSync(f, 'utf8')])
  const { direct, incomplete, problems } = scan(files)
  t.same(direct, [], 'no logger .warn/.error/.fatal call bypasses logProblem (src/log.ts)')
  t.same(incomplete, [], 'each problem written out has a non-empty what, input and fix')
  t.ok(problems > 40, `the scan found the agent's problem lines (${problems})`)
})

t.test('the scan sees what it must refuse', async (t) => {
  const file = join(SRC, 'example.ts')
  const { direct, incomplete, problems } = scan([
    [
      file,
      [
        "this.log.warn({ id }, 'something failed')",
        "this.c.log.error('x')",
        'this.components.logger.warn({}, `y`)',
        "grpcLog.fatal('z')",
        "this.log.info({}, 'fine at info')",
        "console.error('not a logger')",
        "logProblem(this.log, 'warn', { what: '', input: 'a', fix: 'b' })",
        "logProblem(this.log, 'warn', { what: 'w', input: 'a', fix: `` })",
        "logProblem(this.log, 'warn', { what: `w ${x}`, input: x, fix: 'do y' })",
      ].join('\n'),
    ],
  ])
  t.same(
    direct.map((d) => d.where),
    [1, 2, 3, 4].map((l) => `${relative(process.cwd(), file)}:${l}`),
    'each direct warn/error/fatal on a logger',
  )
  t.same(
    incomplete.map((d) => d.where),
    [7, 8].map((l) => `${relative(process.cwd(), file)}:${l}`),
    'each problem with an empty part',
  )
  t.equal(problems, 3)
})

t.test('problemMessage and logProblem: the line names the input and says what to do', async (t) => {
  t.equal(
    problemMessage({ what: 'cannot watch the key file', input: '/etc/shoal/keys', fix: 'SIGHUP still reloads it' }),
    'cannot watch the key file (/etc/shoal/keys); SIGHUP still reloads it',
    'the input is added when WHAT does not name it',
  )
  t.equal(
    problemMessage({ what: 'no Docker engine at unix:///x.sock', input: 'unix:///x.sock', fix: 'use --discovery static' }),
    'no Docker engine at unix:///x.sock; use --discovery static',
    'and not repeated when it does',
  )
  const { logger, lines } = capturedLogger('warn')
  logProblem(logger, 'error', { what: 'key file rejected', input: '/k', fix: 'keeping the current keys' }, { err: 'bad size' })
  t.match(lines, [{ level: 50, msg: 'key file rejected (/k); keeping the current keys', input: '/k', err: 'bad size' }])
})
