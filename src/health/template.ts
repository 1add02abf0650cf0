import { formatHost } from '../address.js'
import { ShoalError } from '../errors.js'
import type { CheckContext } from './types.js'

export type { CheckContext }

const TEMPLATE = /\{\{\s*([^}]*?)\s*\}\}/g

/**
 * Expand `{{ host }}` (an IPv6 address in brackets), `{{ container }}` and `{{ tcp N }}` in a check's args.
 * `tcp N` names a container port and becomes the port where that container port is
 * reachable (for a static entry without container ports: an entry whose port is N).
 *
 * @example
 *   renderTemplate('http://{{ host }}:{{ tcp 80 }}/', { host: '10.0.0.5', ports: [{ type: 'tcp', port: 32768, servicePort: 10080, ip: '10.0.0.5', containerPort: 80 }] })
 *   // 'http://10.0.0.5:32768/'
 */
export function renderTemplate(args: string, ctx: CheckContext): string {
  return args.replace(TEMPLATE, (_m, expr: string) => {
    const words = expr.split(/\s+/)
    // IPv6 in brackets, so `http://{{ host }}:{{ tcp 80 }}/` and `{{ host }}:5432` stay valid.
    if (words[0] === 'host' && words.length === 1) return formatHost(ctx.host)
    if (words[0] === 'container' && words.length === 1) {
      if (!ctx.containerId)
        throw new ShoalError('SHOAL_ERR_CHECK_TEMPLATE', `check args "${args}": {{ container }} used on an instance without a container`)
      return ctx.containerId
    }
    if (words[0] === 'tcp' && words.length === 2 && /^\d+$/.test(words[1]!)) {
      const n = Number(words[1])
      const hit = ctx.ports.find((p) => p.containerPort === n) ?? ctx.ports.find((p) => p.containerPort === undefined && p.port === n)
      if (!hit) throw new ShoalError('SHOAL_ERR_CHECK_TEMPLATE', `check args "${args}": {{ tcp ${n} }} names no port of this instance`)
      return String(hit.port)
    }
    throw new ShoalError('SHOAL_ERR_CHECK_TEMPLATE', `check args "${args}": unknown template {{ ${expr} }}`)
  })
}

/**
 * Split a command line into argv without a shell: whitespace separates words, single
 * quotes keep text as is, double quotes group words, a backslash escapes the next character.
 *
 * @example
 *   splitArgv(`/bin/sh -c 'exit 0'`) // ['/bin/sh', '-c', 'exit 0']
 */
export function splitArgv(line: string): string[] {
  const out: string[] = []
  let cur = ''
  let inWord = false
  let quote: "'" | '"' | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote === "'") {
      if (c === "'") quote = undefined
      else cur += c
    } else if (quote === '"') {
      if (c === '"') quote = undefined
      else if (c === '\\' && i + 1 < line.length) cur += line[++i]
      else cur += c
    } else if (c === "'" || c === '"') {
      quote = c
      inWord = true
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i]
      inWord = true
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur)
      cur = ''
      inWord = false
    } else {
      cur += c
      inWord = true
    }
  }
  if (quote) throw new ShoalError('SHOAL_ERR_CHECK_ARGS', `command "${line}": unterminated ${quote} quote`)
  if (inWord) out.push(cur)
  return out
}
