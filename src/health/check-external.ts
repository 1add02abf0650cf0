import { spawn } from 'node:child_process'
import { ShoalError } from '../errors.js'
import { splitArgv } from './template.js'

/**
 * Run a command (argv, no shell) in a process group of its own; passes when it exits 0. On
 * `signal` the whole group is killed (SIGKILL), the command's children with it, and when the
 * command exits whatever it left running in its group is killed too: a check leaves no process
 * behind.
 */
export function externalCheck(command: string, signal: AbortSignal): Promise<void> {
  let argv: string[]
  try {
    argv = splitArgv(command)
  } catch (err) {
    return Promise.reject(err)
  }
  if (argv.length === 0) return Promise.reject(new ShoalError('SHOAL_ERR_CHECK_ARGS', 'External: empty command'))
  if (signal.aborted) return Promise.reject(new Error('aborted before it started'))
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { shell: false, stdio: 'ignore', detached: true })
    const killGroup = (): void => {
      if (child.pid === undefined) return
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        // the group is gone already
      }
    }
    signal.addEventListener('abort', killGroup, { once: true })
    child.once('error', (err) => {
      signal.removeEventListener('abort', killGroup)
      reject(err)
    })
    child.once('exit', (code, sig) => {
      signal.removeEventListener('abort', killGroup)
      killGroup()
      if (code === 0) resolve()
      else reject(new Error(sig ? `killed by ${sig}` : `exit code ${code}`))
    })
  })
}
