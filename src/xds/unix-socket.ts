/**
 * The agent's Unix-socket ADS listener (`--xds-socket PATH`): the one way to the local Envoy
 * that carries private keys (SDS Secrets). A socket file is guarded by its mode, unlike a
 * loopback port any local process can connect to, so it must never be reachable by others,
 * not even for an instant: it is bound inside a fresh folder of mode 0700 next to PATH, set to
 * 0600 there, and only then renamed to PATH (owned by the agent's user, as the process that
 * made it).
 */
import { createConnection, type Server as NetServer } from 'node:net'
import { chmod, lstat, mkdtemp, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { ShoalError } from '../errors.js'

/** The mode of the socket file: the agent's user only. */
export const SOCKET_MODE = 0o600

/** A socket file something still listens on. */
function inUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/**
 * Binds `server` (the ADS listener, grpc.ts) on the Unix socket `path` (see the file header) and returns how to remove
 * the file again. A socket file left by an agent that is gone is replaced; a live one, or a
 * path that is not a socket, is SHOAL_ERR_BIND naming `--xds-socket`.
 */
export async function bindUnixSocket(server: NetServer, path: string, flag = '--xds-socket'): Promise<() => Promise<void>> {
  const fail = (why: string, cause?: unknown): never => {
    throw new ShoalError('SHOAL_ERR_BIND', `${flag}: cannot listen on ${path}: ${why}`, { cause })
  }
  try {
    const st = await lstat(path)
    if (!st.isSocket()) fail('the path exists and is not a socket (remove it, or choose another path)')
    if (await inUse(path)) fail('another process listens on it (another agent on this host? give each its own --xds-socket)')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  let dir: string
  try {
    dir = await mkdtemp(join(dirname(path), `.${basename(path)}.`))
  } catch (err) {
    return fail(`cannot make a folder next to it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err)
  }
  try {
    const tmp = join(dir, 'ads.sock')
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(tmp, () => {
        server.off('error', reject)
        resolve()
      })
    }).catch((err: unknown) => fail((err as Error).message.split('\n')[0]!, err))
    await chmod(tmp, SOCKET_MODE)
    await rename(tmp, path)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  return async () => {
    await rm(path, { force: true })
  }
}
