// The layers of docs/architecture.md, checked on every `npm run lint`: an import may only run
// down (or sideways inside one folder). From the top: cli > agent > http, xds, dns, docker >
// registry > gossip, health, identity > the ground floor (errors, log, clock, address, metrics, histogram).
const folder = (name) => `^src/${name}/`
const ground = '^src/(errors|log|clock|address|metrics|histogram|flags|lifecycle|text)\\.ts$'
const rule = (name, from, to) => ({ name, severity: 'error', from: { path: from }, to: { path: to } })

module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
    rule('ground-floor-imports-nothing-above', ground, '^src/(gossip|health|identity|registry|docker|xds|dns|http|agent|cli)/'),
    rule('gossip-knows-no-services', folder('gossip'), '^src/(health|identity|registry|docker|xds|dns|http|agent|cli)/'),
    rule('health-is-a-leaf', folder('health'), '^src/(gossip|identity|registry|docker|xds|dns|http|agent|cli)/'),
    rule('identity-is-a-leaf', folder('identity'), '^src/(gossip|health|registry|docker|xds|dns|http|agent|cli)/'),
    rule('registry-knows-no-sockets-docker-or-protobuf', folder('registry'), '^src/(identity|docker|xds|dns|http|agent|cli)/'),
    rule('docker-feeds-the-registry-only', folder('docker'), '^src/(gossip|identity|xds|dns|http|agent|cli)/'),
    rule('xds-reads-the-catalog-only', folder('xds'), '^src/(gossip|docker|dns|http|agent|cli)/'),
    rule('dns-reads-the-catalog-only', folder('dns'), '^src/(gossip|health|docker|xds|http|agent|cli)/'),
    rule('http-reads-public-views-only', folder('http'), '^src/(docker|agent|cli)/'),
    rule('agent-is-below-the-cli', folder('agent'), '^src/cli(/|\\.ts$)'),
    {
      name: 'other-folders-through-index-or-types',
      comment:
        "Runtime imports of another folder go through its index.ts; deep imports only reach its types.ts, and identity's names.ts (its API without the X.509 stack, so that xds and the agent load @peculiar only with --tls-dir).",
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/([^/]+)/', pathNot: ['^src/$1/', '^src/[^/]+/(index|types)\\.ts$', '^src/identity/names\\.ts$'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js'] },
  },
}
