/** The garbage-collection workaround the streaming executor and the file writer need. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFn: (() => void) | null | undefined;

/**
 * A full garbage collection, so that a dropped layer's arrays are freed now. V8 frees large
 * ArrayBuffers only when it collects, and left alone it lets hundreds of MB of dropped layers pile
 * up before it does; streaming promises "about one layer in memory", so it collects at each layer
 * boundary (a few ms: the JS heap itself is small). No-op when the runtime refuses --expose-gc.
 */
export function releaseMemory(): void {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
}
