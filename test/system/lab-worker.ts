// A test process that makes a lab and is then killed (test/system/lab-cleanup.test.ts): a netns
// lab with a process in a namespace, or a private dockerd with a running container. Its
// teardown never runs; whatever is cleaned up is cleaned by the signal hook or the reaper.
// Prints one JSON line once everything is up, then waits to be killed.
import { randomBytes } from 'node:crypto'
import { NetnsLab } from './netns.js'
import { IMAGE, startDockerd } from './dockerd.js'

const kind = process.argv[2]
// The container's and the namespace's process, findable by its command line.
const marker = String(100_000 + (randomBytes(2).readUInt16BE(0) % 50_000))
const noTeardown = {
  skip: (why: string) => {
    console.log(JSON.stringify({ skip: why }))
    process.exit(0)
  },
  teardown: () => undefined,
}

if (kind === 'netns') {
  const lab = NetnsLab.create({ hosts: 2 })
  lab.spawnIn(1, 'sleep', [marker])
  console.log(JSON.stringify({ prefix: lab.prefix, bridge: lab.bridge, dir: lab.dir, marker }))
} else {
  const d = await startDockerd(noTeardown)
  await d!.cli(['run', '-d', '--name', 'held', IMAGE, 'sleep', marker])
  console.log(JSON.stringify({ dir: d!.dir, bridge: d!.bridge, marker }))
}
setInterval(() => undefined, 60_000)
