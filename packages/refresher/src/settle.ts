/**
 * How long closing a BullMQ queue or worker first waits for a connect in progress, in
 * milliseconds: a local Redis connects within a few milliseconds, a remote one within a second.
 */
export const CONNECT_WAIT_MS = 2_000;

function settled(): true {
  return true;
}

/** Resolves true when `promise` settles within `timeoutMs`, false otherwise. */
export async function settleWithin(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([promise.then(settled, settled), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
