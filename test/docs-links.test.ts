// Citations of documents must resolve in a fresh clone. A file under src/, test/, bench/ or
// scripts/, a config file at the top, README.md or a page under docs/ that names a document
// (`docs/NAME.md`, or a name in upper case such as `README.md` or `bench/RESULTS-serf.md`)
// must name one that exists in the repository, and a section it names (`#anchor`, or a quoted
// title right after the path) must be a heading of that document. README.md and the pages
// under docs/ in turn may only link to files and headings that exist, and the pages may only
// name repository files that exist. Globs (`bench/RESULTS-*.md`) must match.
import t from 'tap'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SELF = relative(ROOT, fileURLToPath(import.meta.url))
const SCANNED_DIRS = ['src', 'test', 'bench', 'scripts', 'docs']
const SKIPPED_DIRS = new Set(['node_modules', 'dist', '.tap', '.git', '.worktrees', 'test-output', 'coverage'])
const TEXT = /\.(ts|js|mjs|cjs|md|json|ya?ml|html|css|sh)$/

/** A document named somewhere: the path as written, where, and a section if one is named. */
export interface Citation {
  file: string
  line: number
  path: string
  section?: string
}

// A document path: optional folders, then `docs/<anything>.md` or a name that starts with an
// upper-case word (README.md, GOSSIP.md, RESULTS-serf.md, RESULTS-*.md). A section may follow
// as `#anchor` or as a quoted title ("Names", 'Timing defaults'), after a space or a comma.
const CITATION =
  /(?<![\w/.-])((?:\.{0,2}\/)?(?:[\w.-]+\/)*(?:(?<=docs\/)[\w*.-]+|[A-Z][A-Z0-9_]*(?:-[\w*]+)*)\.md)(?:#([\w-]+)|,?\s+"([^"\n]+)")?/g
const URL_SPAN = /\b[a-z][a-z0-9+.-]*:\/\/\S+/gi

/** Every document citation in `text`, URLs excepted. */
export function citationsIn(text: string, file: string): Citation[] {
  const out: Citation[] = []
  const lines = text.split('\n')
  lines.forEach((lineText, i) => {
    const urls = [...lineText.matchAll(URL_SPAN)].map((m) => [m.index, m.index + m[0].length] as const)
    for (const m of lineText.matchAll(CITATION)) {
      if (urls.some(([a, b]) => m.index >= a && m.index < b)) continue
      const c: Citation = { file, line: i + 1, path: m[1]! }
      if (m[2] !== undefined) c.section = '#' + m[2]
      else if (m[3] !== undefined) c.section = m[3]
      out.push(c)
    }
  })
  return out
}

/** Repository paths named in a page of docs/: `src/...`, `test/...` and the like, in backticks. */
export function repoPathsIn(text: string, file: string): Citation[] {
  const out: Citation[] = []
  text.split('\n').forEach((lineText, i) => {
    for (const m of lineText.matchAll(/`((?:src|test|bench|scripts|compose|examples|docs)\/[\w*./-]*[\w*])(?::\d+)?`/g)) {
      out.push({ file, line: i + 1, path: m[1]! })
    }
  })
  return out
}

/** A glob as a regular expression over `/`-separated paths: `*` within a segment, `**\/` any folders. */
function globToRegExp(glob: string): RegExp {
  const parts = glob.split('**/').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*'))
  return new RegExp('^' + parts.join('(?:[^/]+/)*') + '$')
}

/** True when `p` (relative to `base`, globs allowed) names an existing file or folder. */
function exists(base: string, p: string): boolean {
  const full = join(base, p)
  if (!p.includes('*')) return existsSync(full)
  // Walk from the last folder before the first glob, matching the rest of the path.
  const fixed = full.slice(0, full.indexOf('*'))
  const dir = fixed.endsWith('/') ? fixed.slice(0, -1) : dirname(fixed)
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return false
  const re = globToRegExp(relative(dir, full))
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).some((n) => re.test(n))
}

/**
 * Where a citation in `file` resolves inside the repository: the root first, then the citing
 * file's folder (only the folder for `./` and `../` paths).
 */
export function resolveCitation(root: string, c: Citation): string | undefined {
  const bases = c.path.startsWith('.') ? [join(root, dirname(c.file))] : [root, join(root, dirname(c.file))]
  for (const base of bases) {
    const full = join(base, c.path)
    if (!relative(root, full).startsWith('..') && exists(base, c.path)) return full
  }
  return undefined
}

/** Relative Markdown links `[text](target#anchor)`: URLs and mail links excepted. */
export function markdownLinksIn(text: string, file: string): Citation[] {
  const out: Citation[] = []
  text.split('\n').forEach((lineText, i) => {
    for (const m of lineText.matchAll(/\]\(([^)\s#]*)(?:#([^)\s]+))?\)/g)) {
      const target = m[1]!
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue
      // Links resolve against the linking file's folder; an empty target is the file itself.
      const path = target === '' ? basename(file) : target
      const c: Citation = { file, line: i + 1, path: path.startsWith('.') ? path : './' + path }
      if (m[2] !== undefined) c.section = '#' + m[2]
      out.push(c)
    }
  })
  return out
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\s-]/g, '')
    .replace(/\s/g, '-')
}

/**
 * True when the Markdown file has the section: for `#anchor`, a heading with that anchor; for
 * a quoted title, a heading whose text contains it (case aside).
 */
export function hasSection(markdown: string, section: string): boolean {
  const headings = markdown
    .split('\n')
    .filter((l) => /^#{1,6}\s/.test(l))
    .map((l) => l.replace(/^#+\s+/, ''))
  if (section.startsWith('#')) return headings.some((h) => slug(h) === section.slice(1))
  const want = section.toLowerCase()
  return headings.some((h) => h.toLowerCase().includes(want))
}

function filesUnder(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string): void => {
    for (const e of readdirSync(join(ROOT, d), { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) {
        if (!SKIPPED_DIRS.has(e.name)) walk(p)
      } else if (TEXT.test(e.name)) out.push(p)
    }
  }
  if (existsSync(join(ROOT, dir))) walk(dir)
  return out
}

/** Files whose citations are checked: the scanned folders, README.md and the config files at the top. */
function scannedFiles(): string[] {
  const top = readdirSync(ROOT, { withFileTypes: true })
    .filter((e) => e.isFile() && TEXT.test(e.name) && e.name !== 'package-lock.json')
    .map((e) => e.name)
  return [...top, ...SCANNED_DIRS.flatMap(filesUnder)].filter((f) => f !== SELF)
}

/** Problems with the citations of `files`, one line each naming the file, the line and the path. */
export function danglingCitations(root: string, files: Array<{ file: string; text: string }>): string[] {
  // A set: a Markdown link to README.md is also a citation of it, and one problem is enough.
  const problems = new Set<string>()
  for (const { file, text } of files) {
    const links = file === 'README.md' || file.startsWith('docs/') ? markdownLinksIn(text, file) : []
    for (const c of [...citationsIn(text, file), ...links]) {
      const where = `${c.file}:${c.line}`
      const target = resolveCitation(root, c)
      if (target === undefined) {
        problems.add(`${where} cites ${c.path}, which is not in the repository`)
        continue
      }
      if (
        c.section !== undefined &&
        target.endsWith('.md') &&
        !target.includes('*') &&
        !hasSection(readFileSync(target, 'utf8'), c.section)
      ) {
        problems.add(`${where} cites section "${c.section}" of ${c.path}, which has no such heading`)
      }
    }
    if (file.startsWith('docs/')) {
      for (const c of repoPathsIn(text, file)) {
        if (!exists(root, c.path)) problems.add(`${c.file}:${c.line} names ${c.path}, which is not in the repository`)
      }
    }
  }
  return [...problems]
}

t.test('the citation finder sees paths, bare names, sections and globs, and skips URLs', async (t) => {
  const text = [
    'The rules it keeps are in GOSSIP.md; see docs/gossip.md#probing.',
    '(docs/architecture.md "Names") and bench/RESULTS-*.md, ./RESULTS-registry.md',
    'https://github.com/NinesStack/sidecar/blob/main/README.md is a URL',
    'src/registry/names.ts and lowercase notes.md are not documents',
  ].join('\n')
  t.same(
    citationsIn(text, 'x.ts').map((c) => [c.line, c.path, c.section]),
    [
      [1, 'GOSSIP.md', undefined],
      [1, 'docs/gossip.md', '#probing'],
      [2, 'docs/architecture.md', 'Names'],
      [2, 'bench/RESULTS-*.md', undefined],
      [2, './RESULTS-registry.md', undefined],
    ],
  )
})

t.test('a citation of a missing document or section is reported with its file and line', async (t) => {
  const problems = danglingCitations(ROOT, [
    { file: 'src/x.ts', text: '// see ARCHITECTURE.md\n// and docs/TOOLING.md' },
    { file: 'bench/y.ts', text: "writeFileSync(new URL('./RESULTS-nothing.md', import.meta.url))" },
    { file: 'README.md', text: 'the design notes (`shared/design/GOSSIP.md` beside this repository)' },
    { file: 'test/z.ts', text: '// docs/gossip.md "No such section here"' },
    { file: 'docs/w.md', text: 'implemented in `src/gossip/nothing.ts`' },
    { file: 'docs/v.md', text: 'see [the timing](architecture.md#timings) and [the README](../README.md#no-such-heading)' },
  ])
  t.same(problems, [
    'src/x.ts:1 cites ARCHITECTURE.md, which is not in the repository',
    'src/x.ts:2 cites docs/TOOLING.md, which is not in the repository',
    'bench/y.ts:1 cites ./RESULTS-nothing.md, which is not in the repository',
    'README.md:1 cites shared/design/GOSSIP.md, which is not in the repository',
    'test/z.ts:1 cites section "No such section here" of docs/gossip.md, which has no such heading',
    'docs/w.md:1 names src/gossip/nothing.ts, which is not in the repository',
    'docs/v.md:1 cites section "#no-such-heading" of ../README.md, which has no such heading',
    'docs/v.md:1 cites section "#timings" of ./architecture.md, which has no such heading',
  ])
  t.same(
    danglingCitations(ROOT, [
      { file: 'bench/y.ts', text: "new URL('./RESULTS-serf.md', import.meta.url) and bench/RESULTS-*.md" },
      { file: 'src/x.ts', text: '// docs/gossip.md "Suspicion timeout" and docs/architecture.md#timing-defaults' },
      { file: 'docs/gossip.md', text: '[timing](architecture.md#timing-defaults), [API](../README.md#http-api), [top](#gossip)' },
    ]),
    [],
    'paths relative to the citing file, globs and existing sections resolve',
  )
})

t.test('every document cited in the repository exists, with the sections it names', async (t) => {
  const files = scannedFiles().map((file) => ({ file, text: readFileSync(join(ROOT, file), 'utf8') }))
  t.ok(files.some((f) => f.file === 'README.md') && files.some((f) => f.file.startsWith('src/')), 'README.md and src/ are scanned')
  t.same(danglingCitations(ROOT, files), [], 'no citation dangles (fix the path, or add the document under docs/)')
})

t.test('test/ holds only test files: every helper is under test/lib (docs/style.md)', async (t) => {
  const strays = readdirSync('test', { withFileTypes: true }).filter((e) => e.isFile() && !e.name.endsWith('.test.ts'))
  t.same(
    strays.map((e) => e.name),
    [],
    'no helper beside the tests',
  )
})
