// A check's output (an HttpGet body, a command's stdout) is the service's text: it reaches the
// record's detail, the UI and logs. Every character the HTTP API refuses in a drain reason
// (src/text.ts: C0, DEL, C1, line separators, bidi controls) is shown as `?` in it, bar tab and
// newline; every other character is kept. Checked for every BMP code point, not a sample.
import t from 'tap'
import { excerpt } from '../src/health/finding.js'
import { maskUnsafe, unsafeChar } from '../src/text.js'

t.test('excerpt masks exactly the characters unsafeChar finds, bar tab and newline', async (t) => {
  const wrong: string[] = []
  for (let cp = 0; cp <= 0xffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue // lone surrogates are not UTF-8
    const c = String.fromCharCode(cp)
    const bytes = Buffer.from(`a${c}b`)
    const shown = excerpt(bytes, bytes.length)
    const want = unsafeChar(c) === undefined || c === '\t' || c === '\n' ? `a${c}b` : 'a?b'
    if (shown !== want) wrong.push(`U+${cp.toString(16).padStart(4, '0')}: ${JSON.stringify(shown)}`)
  }
  t.same(wrong.slice(0, 20), [], `${wrong.length} code points shown wrongly`)
})

t.test('maskUnsafe', async (t) => {
  t.equal(maskUnsafe('ok\u001b[2J\tdone\u202e\u009b\n'), 'ok?[2J\tdone??\n')
  t.equal(maskUnsafe('café 🐟'), 'café 🐟')
})
