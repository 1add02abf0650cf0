/**
 * The identity files and how they are written. Every file is replaced atomically: written
 * under a temporary name in the same folder, flushed, then renamed over the old one, so a
 * reader (a gRPC `file_watcher` certificate provider, a TLS server) sees the old file or the
 * new one, never half of one.
 *
 * Layout (the names are a contract: bootstraps and operators point at them):
 *
 *   ROOT_DIR/root.pem, root-key.pem           shoal ca init (the key goes offline)
 *   TLS_DIR/intermediate.pem, intermediate-key.pem, bundle.pem
 *                                             shoal ca intermediate (one per node)
 *   TLS_DIR/services/NAME/cert.pem, key.pem, bundle.pem
 *                                             the agent: leaf + intermediate, leaf key, roots
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export const ROOT_FILES = { cert: 'root.pem', key: 'root-key.pem' } as const
export const INTERMEDIATE_FILES = { cert: 'intermediate.pem', key: 'intermediate-key.pem', bundle: 'bundle.pem' } as const
export const LEAF_FILES = { cert: 'cert.pem', key: 'key.pem', bundle: 'bundle.pem' } as const
/** The folder under `--tls-dir` that holds one folder per local service. */
export const SERVICES_DIR = 'services'

/** Private keys: readable by the owner only. */
export const KEY_MODE = 0o600
/** Certificates and bundles: public. */
export const CERT_MODE = 0o644

/** The three files of a service's identity under `--tls-dir`. */
export function leafPaths(tlsDir: string, service: string): { dir: string; cert: string; key: string; bundle: string } {
  const dir = join(tlsDir, SERVICES_DIR, service)
  return { dir, cert: join(dir, LEAF_FILES.cert), key: join(dir, LEAF_FILES.key), bundle: join(dir, LEAF_FILES.bundle) }
}

/**
 * Replaces `path` with `data` atomically (temporary file, fsync, rename, fsync of the
 * folder). The folder is made when missing (mode 0755). Throws the file system's error.
 */
export async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const dir = dirname(path)
  await mkdir(dir, { recursive: true, mode: 0o755 })
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    const f = await open(tmp, 'wx', mode)
    try {
      await f.writeFile(data)
      // The mode given to open() is masked by the umask; a key must still end up 0600.
      await f.chmod(mode)
      await f.sync()
    } finally {
      await f.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  await syncDir(dir)
}

/** Flushes a folder's entries (the rename) to disk; a file system that cannot is left as it is. */
async function syncDir(dir: string): Promise<void> {
  try {
    const d = await open(dir, 'r')
    try {
      await d.sync()
    } finally {
      await d.close()
    }
  } catch {
    /* fsync of a folder is not supported everywhere; the rename itself is still atomic */
  }
}
