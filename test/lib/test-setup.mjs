// Loaded into every test process before its file (.taprc node-arg). tap's processinfo hook
// (@tapjs/processinfo, for process tracking and coverage, which this suite does not collect:
// .taprc disable-coverage) wraps child_process so that every Node process a test starts loads
// it too (it adds itself to NODE_OPTIONS through process-on-spawn): about 0.35 s of CPU per start
// for hundreds of agents, CLIs and clients a run. Its spawn listener is dropped here, and with it
// the hook from this process' environment, so a test's children start as a user's would.
import onSpawn from 'process-on-spawn'

onSpawn.removeAllListeners()
const hook = /"?--(?:import|require|loader)=\S*@tapjs[/\\]processinfo[^\s"]*"?/g
if (process.env.NODE_OPTIONS) process.env.NODE_OPTIONS = process.env.NODE_OPTIONS.replace(hook, '').replace(/\s+/g, ' ').trim()
