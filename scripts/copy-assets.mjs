// tsc compiles only .ts: copy the UI's static files next to the compiled HTTP server, and the
// xDS descriptors (scripts/xds-descriptors.ts) next to the module that reads them.
import { cpSync, existsSync } from 'node:fs'
if (existsSync('src/http/ui')) cpSync('src/http/ui', 'dist/http/ui', { recursive: true })
cpSync('src/xds/descriptors.json', 'dist/xds/descriptors.json')
