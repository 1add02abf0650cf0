/**
 * The identity files and how they are written. Every file is replaced atomically: written
 * under a temporary name in the same folder, flushed, then renamed over the old one, so a
 * reader (a gRPC `file_watcher` certificate provider, a TLS server) sees the old file or the
 * new one, never half of one.
 *
 * A leaf's certificate and key must also change together: a reader that loads `cert.pem` and
 * `key.pem` with two reads (grpc-js's file watcher reads them in parallel, with no check that
 * they match) and lands between the replacement of one and of the other gets a new key with
 * the old certificate, and refuses every new connection until its next read. So a service's
 * files are a generation: written into a new folder `..gen-HEX` of their own, then published by
 * one rename of the symlink `..data` to it; `cert.pem`, `key.pem` and `bundle.pem` are symlinks
 * `..data/NAME` (Kubernetes' projected volumes do the same). At every instant the three names
 * resolve into one generation; only a reader whose two opens straddle the one rename can still
 * mix them (microseconds, instead of the two fsyncs that separated the files before).
 *
 * Layout (the names are a contract: bootstraps and operators point at them):
 *
 *   ROOT_DIR/root.pem, root-key.pem           shoal ca init (the key goes offline)
 *   TLS_DIR/intermediate.pem, intermediate-key.pem, bundle.pem
 *                                             shoal ca intermediate (one per node)
 *   TLS_DIR/services/NAME/cert.pem, key.pem, bundle.pem
 *                                             the agent: leaf + intermediate, leaf key, roots
 *                                             (symlinks into ..data, the current generation)
 *   TLS_DIR/node/cert.pem, key.pem, bundle.pem
 *                                             the agent: the node's own identity (its Envoy)
 */
import { randomBytes } from 'node:crypto'
import { lstat, mkdir, open, readdir, readlink, rename, rm, symlink } from 'node:fs/promises'
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

/** The folder under `--tls-dir` that holds the node's own identity (the host's Envoy). */
export const NODE_DIR = 'node'

/** The three files of a leaf in `dir`. */
function filesIn(dir: string): { dir: string; cert: string; key: string; bundle: string } {
  return { dir, cert: join(dir, LEAF_FILES.cert), key: join(dir, LEAF_FILES.key), bundle: join(dir, LEAF_FILES.bundle) }
}

/** The three files of a service's identity under `--tls-dir`. */
export function leafPaths(tlsDir: string, service: string): { dir: string; cert: string; key: string; bundle: string } {
  return filesIn(join(tlsDir, SERVICES_DIR, service))
}

/** The three files of the node's own identity under `--tls-dir`. */
export function nodePaths(tlsDir: string): { dir: string; cert: string; key: string; bundle: string } {
  return filesIn(join(tlsDir, NODE_DIR))
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

/** The symlink that names a file set's current generation. */
export const CURRENT_LINK = '..data'
const GENERATION_PREFIX = '..gen-'

/** One file of a set: its name in the folder, its content and its mode. */
export interface SetFile {
  name: string
  data: string
  mode: number
}

/**
 * Replaces the files of a set in `dir` all at once (see the file header): the new generation
 * is written and flushed in a folder of its own, `..data` is switched to it with one rename,
 * and each name is a symlink `..data/NAME` (made once; plain files of an earlier layout are
 * first moved into a generation of their own, so they too change in one step). The previous
 * generation stays until the next write, for a reader that resolved it a moment ago. Throws
 * the file system's error; a failed write leaves the current generation in place.
 *
 * @example
 *   await writeFileSet(dir, [{ name: 'cert.pem', data: chain, mode: CERT_MODE }, { name: 'key.pem', data: key, mode: KEY_MODE }])
 */
export async function writeFileSet(dir: string, files: readonly SetFile[]): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 })
  await adoptPlainFiles(dir, files)
  const before = await currentGeneration(dir)
  const gen = await writeGeneration(dir, files)
  await pointAt(dir, CURRENT_LINK, gen)
  for (const f of files) await linkName(dir, f.name)
  await syncDir(dir)
  // Generations older than the one just replaced are nobody's any more.
  for (const name of await readdir(dir)) {
    if (name.startsWith(GENERATION_PREFIX) && name !== gen && name !== before) await rm(join(dir, name), { recursive: true, force: true })
  }
}

/** The generation `..data` names, or undefined. */
async function currentGeneration(dir: string): Promise<string | undefined> {
  try {
    return await readlink(join(dir, CURRENT_LINK))
  } catch {
    return undefined
  }
}

/** Writes the files into a new generation folder, each flushed, and returns its name. */
async function writeGeneration(dir: string, files: readonly SetFile[]): Promise<string> {
  const gen = `${GENERATION_PREFIX}${Date.now().toString(16)}-${randomBytes(4).toString('hex')}`
  const path = join(dir, gen)
  await mkdir(path, { mode: 0o755 })
  try {
    for (const f of files) {
      const fh = await open(join(path, f.name), 'wx', f.mode)
      try {
        await fh.writeFile(f.data)
        // The mode given to open() is masked by the umask; a key must still end up 0600.
        await fh.chmod(f.mode)
        await fh.sync()
      } finally {
        await fh.close()
      }
    }
    await syncDir(path)
  } catch (err) {
    await rm(path, { recursive: true, force: true })
    throw err
  }
  return gen
}

/** Makes `name` in `dir` a symlink to `target`, replacing what was there with one rename. */
async function pointAt(dir: string, name: string, target: string): Promise<void> {
  const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`)
  await symlink(target, tmp)
  try {
    await rename(tmp, join(dir, name))
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

/** `name` becomes the symlink `..data/NAME`, unless it is one already. */
async function linkName(dir: string, name: string): Promise<void> {
  const target = join(CURRENT_LINK, name)
  try {
    if ((await lstat(join(dir, name))).isSymbolicLink() && (await readlink(join(dir, name))) === target) return
  } catch {
    /* missing: made below */
  }
  await pointAt(dir, name, target)
}

/**
 * Plain files of the set left by an earlier layout (or written by hand) are copied into a
 * generation, and their names become symlinks to it one by one: each symlink resolves to the
 * same content the plain file held, so the set never mixes while it changes layout.
 */
async function adoptPlainFiles(dir: string, files: readonly SetFile[]): Promise<void> {
  if ((await currentGeneration(dir)) !== undefined) return
  const plain: SetFile[] = []
  for (const f of files) {
    try {
      const st = await lstat(join(dir, f.name))
      if (!st.isFile()) continue
      const fh = await open(join(dir, f.name), 'r')
      try {
        plain.push({ name: f.name, data: await fh.readFile('utf8'), mode: st.mode & 0o777 })
      } finally {
        await fh.close()
      }
    } catch {
      /* not there */
    }
  }
  if (plain.length === 0) return
  await pointAt(dir, CURRENT_LINK, await writeGeneration(dir, plain))
  for (const f of plain) await linkName(dir, f.name)
}
