/**
 * What a process holds, read from /proc (Linux): its TCP sockets towards a port, and the
 * processes whose command line contains a marker. For tests that check that nothing is left
 * behind.
 *
 * @example
 *   socketsTo(agent.pid, 8080)          // the agent's TCP sockets connected (or connecting) to :8080
 *   processesWith('sleep 61.5')         // pids still running that command
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'

/** Socket inodes among the open file descriptors of `pid`. */
function socketInodes(pid: number | 'self'): Set<string> {
  const out = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link = ''
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`)
    } catch {
      continue // closed while we looked
    }
    const m = /^socket:\[(\d+)\]$/.exec(link)
    if (m) out.add(m[1]!)
  }
  return out
}

/** The TCP sockets `pid` holds whose remote end is `port` (any address, any state but listening). */
export function socketsTo(pid: number | 'self', port: number): number {
  const mine = socketInodes(pid)
  let n = 0
  for (const table of ['tcp', 'tcp6']) {
    let text = ''
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8')
    } catch {
      continue
    }
    for (const row of text.split('\n').slice(1)) {
      const cols = row.trim().split(/\s+/)
      if (cols.length < 10) continue
      const remPort = parseInt(cols[2]!.split(':')[1] ?? '', 16)
      if (remPort === port && mine.has(cols[9]!)) n++
    }
  }
  return n
}

/** Pids of running processes whose command line (arguments joined by spaces) contains `marker`. */
export function processesWith(marker: string): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ')
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
      // A zombie has exited: only its parent's wait is missing.
      if (cmd.includes(marker) && !/\) Z /.test(stat)) out.push(Number(p))
    } catch {
      // exited while we looked
    }
  }
  return out
}
