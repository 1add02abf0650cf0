/**
 * The web UI's files (plain HTML, JS and CSS, no build step), read once at start and
 * served from memory. A fixed list: no path from a request ever reaches the file system.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { ShoalError } from '../errors.js'

export interface Asset {
  body: Buffer
  contentType: string
}

/** URL path -> file name in the UI folder. */
export const UI_FILES: Readonly<Record<string, { file: string; contentType: string }>> = {
  '/': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: 'style.css', contentType: 'text/css; charset=utf-8' },
  '/ui/favicon.svg': { file: 'favicon.svg', contentType: 'image/svg+xml' },
}

/**
 * The UI folder: next to this file when run from src/ (tsx, tap), or back in src/http/ui
 * when run from dist/ (tsc does not copy non-TS files).
 */
export function defaultUiDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url))
  const candidates = [join(here, 'ui'), join(here, '..', '..', 'src', 'http', 'ui')]
  return candidates.find((d) => existsSync(join(d, 'index.html'))) ?? candidates[0]!
}

export async function loadUiAssets(dir: string): Promise<Map<string, Asset>> {
  const out = new Map<string, Asset>()
  for (const [path, { file, contentType }] of Object.entries(UI_FILES)) {
    try {
      out.set(path, { body: await readFile(join(dir, file)), contentType })
    } catch (err) {
      throw new ShoalError('SHOAL_ERR_UI_ASSET', `web UI file ${join(dir, file)} cannot be read: ${(err as Error).message}`, { cause: err })
    }
  }
  return out
}
