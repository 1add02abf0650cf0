// tsc compiles only .ts: copy the UI's static files next to the compiled HTTP server.
import { cpSync, existsSync } from 'node:fs'
if (existsSync('src/http/ui')) cpSync('src/http/ui', 'dist/http/ui', { recursive: true })
