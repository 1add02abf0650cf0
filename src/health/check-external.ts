import { spawn } from 'node:child_process'
import { ShoalError } from '../errors.js'
import { CheckFailed, OutputHead, type Finding } from './finding.js'
import { splitArgv } from './template.js'

/** How long a command's output may still arrive after it exited (a child of it may hold the pipe). */
const OUTPUT_GRACE_MS = 50

/**
 * Run a command (argv, no shell) in a process group of its own; passes when it exits 0,
 * resolving to the start of its output (stdout and stderr as they came, at most
 * CHECK_OUTPUT_BYTES). Any other exit rejects with CheckFailed (`exit code 1`, with the
 * output). On `signal` the whole group is killed (SIGKILL), the command's children with it, and
 * when the command exits whatever it left running in its group is killed too: a check leaves
 * no process behind.
 */
export function externalCheck(command: string, signal: AbortSignal): Promise<Finding> {
  let argv: string[]
  try {
    argv = splitArgv(command)
  } catch (err) {
    return Promise.reject(err)
  }
  if (argv.length === 0) return Promise.reject(new ShoalError('SHOAL_ERR_CHECK_ARGS', 'External: empty command'))
  if (signal.aborted) return Promise.reject(new Error('aborted before it started'))
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { shell: false, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    const out = new OutputHead()
    child.stdout.on('data', (c: Buffer) => out.add(c))
    child.stderr.on('data', (c: Buffer) => out.add(c))
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
      // The pipes close once the group is gone; a process that left it may keep them open, so
      // the output is read up to a short grace and the pipes are then closed from this side.
      let settled = false
      const settle = (): void => {
        if (settled) return
        settled = true
        clearTimeout(grace)
        child.stdout.destroy()
        child.stderr.destroy()
        const output = out.text()
        const finding: Finding = output === undefined ? {} : { output }
        if (code === 0) resolve(finding)
        else reject(new CheckFailed(sig ? `killed by ${sig}` : `exit code ${code}`, finding))
      }
      const grace = setTimeout(settle, OUTPUT_GRACE_MS)
      grace.unref()
      let open = 2
      const closed = (): void => {
        if (--open === 0) settle()
      }
      if (child.stdout.closed) closed()
      else child.stdout.once('close', closed)
      if (child.stderr.closed) closed()
      else child.stderr.once('close', closed)
    })
  })
}
