/**
 * A PKI in a temporary folder for identity tests: one root (`shoal ca init`'s code) and an
 * intermediate per node (`shoal ca intermediate`'s), removed at the test's teardown.
 *
 * @example
 *   const pki = await makePki(t, { cluster: 'prod', nodes: ['n1', 'n2'] })
 *   pki.tlsDir('n1')   // holds intermediate.pem, intermediate-key.pem, bundle.pem
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { initCa, makeIntermediate } from '../../src/identity/index.js'

export interface Pki {
  base: string
  rootDir: string
  trustDomain: string
  tlsDir(node: string): string
  /** (Re)writes a node's intermediate, as `shoal ca intermediate` does. */
  intermediate(node: string, opts?: { ttlMs?: number; nameConstraint?: boolean; now?: number }): Promise<void>
}

export async function makePki(
  t: Pick<Test, 'teardown'>,
  opts: { cluster?: string; nodes?: string[]; now?: number; rootTtlMs?: number } = {},
): Promise<Pki> {
  const base = mkdtempSync(join(tmpdir(), 'shoal-pki-'))
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  const rootDir = join(base, 'root')
  const root = await initCa({ cluster: opts.cluster ?? 'test', outDir: rootDir, now: opts.now, ttlMs: opts.rootTtlMs })
  const pki: Pki = {
    base,
    rootDir,
    trustDomain: root.trustDomain,
    tlsDir: (node) => join(base, `tls-${node}`),
    async intermediate(node, o = {}) {
      await makeIntermediate({
        node,
        caDir: rootDir,
        outDir: pki.tlsDir(node),
        ttlMs: o.ttlMs,
        nameConstraint: o.nameConstraint,
        now: o.now ?? opts.now,
      })
    },
  }
  for (const n of opts.nodes ?? []) await pki.intermediate(n)
  return pki
}
