import type { ChildProcess } from 'node:child_process';

// Children that the harness started and that have not exited yet.
const liveChildren = new Set<ChildProcess>();

let exitHookInstalled = false;

/**
 * Registers a child process to be killed with SIGKILL when this process exits, so a test run that
 * ends early (a failed assertion before `stop()`, a vitest worker torn down) leaves no redis-server
 * or worker behind.
 *
 * NOTE: the hook runs on a normal exit only. A test process killed by a signal still orphans its
 * children.
 */
export function killOnExit(child: ChildProcess): void {
  if (!exitHookInstalled) {
    process.once('exit', killLiveChildren);
    exitHookInstalled = true;
  }

  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

function killLiveChildren(): void {
  for (const child of liveChildren) {
    child.kill('SIGKILL');
  }
}
