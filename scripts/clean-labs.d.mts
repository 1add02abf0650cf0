// Types of scripts/clean-labs.mjs for the test helpers that use it (test/lib/labs.ts).

/** One undo step of a lab (see runSteps in clean-labs.mjs). */
export type LabStep =
  | { run: string[] }
  | { netnsKill: string }
  | { stop: string; ms?: number }
  | { killNaming: string }
  /** SIGKILL process `killPid` if its start time (startTime) is still `start`. */
  | { killPid: number; start: string | undefined }
  /** SIGKILL the process group led by `killGroup` (a detached child), unless its pid now names another process. */
  | { killGroup: number; start: string | undefined }
  | { umountUnder: string }
  | { rm: string }

export interface LabManifest {
  file: string
  owner: number
  ownerStart: string | undefined
  what: string
  claims?: string[]
  steps: LabStep[]
}

export const MANIFEST_DIR: string
export const SCRIPT: string
export function startTime(pid: number | string): string | undefined
export function runSteps(steps: LabStep[], log?: (line: string) => void): void
export function manifests(): LabManifest[]
export function ownerAlive(m: LabManifest): boolean
export function cleanLab(m: LabManifest, log?: (line: string) => void): void
export function writeManifest(id: string, what: string, steps: LabStep[], claims: string[]): string
