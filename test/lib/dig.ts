/**
 * The real resolver for tests: `dig` (Debian dnsutils) against a server on loopback, its
 * output read into sections. Only 127.0.0.0/8 and ::1 are ever asked.
 *
 * @example
 *   const r = await dig(port, ['web.service.shoal', 'SRV'])
 *   r.status          // 'NOERROR'
 *   r.flags           // ['qr', 'aa', 'rd']
 *   r.answer          // [{ name: 'web.service.shoal.', ttl: 0, type: 'SRV', data: ['1', '1', '8080', 'web-1.web.instance.shoal.'] }]
 */
import { execFile, spawnSync } from 'node:child_process'

export interface DigRecord {
  name: string
  ttl: number
  type: string
  /** The record data, split on white space. */
  data: string[]
}

export interface DigResult {
  status: string
  flags: string[]
  answer: DigRecord[]
  authority: DigRecord[]
  additional: DigRecord[]
  /** dig printed "Truncated, retrying in TCP mode." */
  retriedOverTcp: boolean
  /** Which transport the final answer came over, from dig's SERVER line. */
  transport: 'UDP' | 'TCP' | undefined
  raw: string
}

/** Why dig cannot run here, or undefined when it can. */
export function digMissing(): string | undefined {
  const r = spawnSync('dig', ['-v'], { encoding: 'utf8' })
  return r.error ? 'dig is not installed (Debian dnsutils; `npm test` installs it as root)' : undefined
}

function records(lines: string[]): DigRecord[] {
  return lines.map((l) => {
    const [name = '', ttl = '0', , type = '', ...data] = l.split(/\s+/)
    return { name, ttl: Number(ttl), type, data }
  })
}

/**
 * Runs `dig @HOST -p PORT ARGS` (host 127.0.0.1 unless given), with generous timeouts (the
 * machine may be loaded), and parses the answer.
 */
export function dig(port: number, args: string[], host = '127.0.0.1'): Promise<DigResult> {
  if (!/^(127\.|::1$)/.test(host)) throw new Error(`dig only asks loopback in tests, not ${host}`)
  return new Promise((resolve, reject) => {
    execFile('dig', [`@${host}`, '-p', String(port), '+time=5', '+tries=2', ...args], { encoding: 'utf8' }, (err, stdout) => {
      if (err && !stdout) return reject(err)
      const sections: Record<string, string[]> = { ANSWER: [], AUTHORITY: [], ADDITIONAL: [] }
      let current: string[] | undefined
      for (const line of stdout.split('\n')) {
        const head = /^;; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:$/.exec(line)
        if (head) current = sections[head[1]!]
        else if (line.trim() === '' || line.startsWith(';')) current = undefined
        else current?.push(line)
      }
      resolve({
        status: /status: ([A-Z0-9_]+)/.exec(stdout)?.[1] ?? 'NONE',
        flags: (/;; flags: ([a-z ]*);/.exec(stdout)?.[1] ?? '').split(' ').filter(Boolean),
        answer: records(sections.ANSWER!),
        authority: records(sections.AUTHORITY!),
        additional: records(sections.ADDITIONAL!),
        retriedOverTcp: stdout.includes('Truncated, retrying in TCP mode'),
        transport: /;; SERVER: .*\((UDP|TCP)\)/.exec(stdout)?.[1] as 'UDP' | 'TCP' | undefined,
        raw: stdout,
      })
    })
  })
}
