// tsc compiles only .ts: copy the UI's static files next to the compiled HTTP server, and the
// xDS descriptors (scripts/xds-descriptors.ts) and the static file's generated validators
// (npm run schema) next to the modules that read them. The one list
// of files a compiled tree needs besides tsc's output: `npm run build` and
// scripts/build-image.sh both run it.
//
//   node scripts/copy-assets.mjs [OUT]    # OUT: tsc's outDir, default dist
import { cpSync, existsSync } from 'node:fs'
import { join } from 'node:path'
const out = process.argv[2] ?? 'dist'
if (existsSync('src/http/ui')) cpSync('src/http/ui', join(out, 'http/ui'), { recursive: true })
cpSync('src/xds/descriptors.json', join(out, 'xds/descriptors.json'))
cpSync('src/registry/static-validate.cjs', join(out, 'registry/static-validate.cjs'))
