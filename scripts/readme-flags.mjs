#!/usr/bin/env node
// `npm run readme:flags`: rewrite the README's flag table of `shoal agent` from the flag
// table in src/agent/config.ts (test/readme-flags.test.ts fails while they differ).
import { readFileSync, writeFileSync } from 'node:fs'
import { AGENT_FLAGS } from '../dist/agent/config.js'
import { markdownTable } from '../dist/flags.js'

const BEGIN = '<!-- agent-flags:begin (npm run readme:flags) -->'
const END = '<!-- agent-flags:end -->'
const readme = readFileSync('README.md', 'utf8')
const i = readme.indexOf(BEGIN)
const j = readme.indexOf(END)
if (i < 0 || j < i) throw new Error(`README.md has no ${BEGIN} ... ${END} block`)
writeFileSync('README.md', readme.slice(0, i + BEGIN.length) + '\n' + markdownTable(AGENT_FLAGS) + '\n' + readme.slice(j))
