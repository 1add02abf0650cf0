import { spawn } from 'node:child_process'
import { ShoalError } from '../errors.js'
import { splitArgv } from './template.js'

/** Run a command (argv, no shell); passes when it exits 0. The signal kills it. */
export function externalCheck(command: string, signal: AbortSignal): Promise<void> {
  let argv: string[]
  try {
    argv = splitArgv(command)
  } catch (err) {
    return Promise.reject(err)
  }
  if (argv.length === 0) return Promise.reject(new ShoalError('SHOAL_ERR_CHECK_ARGS', 'External: empty command'))
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { shell: false, stdio: 'ignore', signal, killSignal: 'SIGKILL' })
    child.once('error', reject)
    child.once('exit', (code, sig) => {
      if (code === 0) resolve()
      else reject(new Error(sig ? `killed by ${sig}` : `exit code ${code}`))
    })
  })
}
