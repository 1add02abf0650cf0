#!/usr/bin/env node
// `npm run schema`: write docs/static.schema.json (the static services file's JSON Schema, for
// editors), the README's field table and the agent's generated validators
// (src/registry/static-validate.cjs, ajv standalone code) from the schema the agent validates
// with (src/registry/static-schema.ts); test/static-schema.test.ts fails while they differ.
import { readFileSync, writeFileSync } from 'node:fs'
import { STATIC_FILE_SCHEMA, STATIC_VALIDATOR_FILE, staticSchemaMarkdown, staticValidatorSource } from '../dist/registry/static-schema.js'

writeFileSync('docs/static.schema.json', JSON.stringify(STATIC_FILE_SCHEMA, null, 2) + '\n')
// Into dist/ as well: the build that ran before this copied the old file there.
const validators = staticValidatorSource()
writeFileSync(`src/registry/${STATIC_VALIDATOR_FILE}`, validators)
writeFileSync(`dist/registry/${STATIC_VALIDATOR_FILE}`, validators)
const BEGIN = '<!-- static-schema:begin (npm run schema) -->'
const END = '<!-- static-schema:end -->'
const readme = readFileSync('README.md', 'utf8')
const i = readme.indexOf(BEGIN)
const j = readme.indexOf(END)
if (i < 0 || j < i) throw new Error(`README.md has no ${BEGIN} ... ${END} block`)
writeFileSync('README.md', readme.slice(0, i + BEGIN.length) + '\n' + staticSchemaMarkdown() + '\n' + readme.slice(j))
