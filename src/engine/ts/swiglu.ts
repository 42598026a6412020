// STUB: replaced by the engine work.
export function swigluForward(..._args: unknown[]): never { throw new Error('swigluForward (ts) not implemented yet'); }
export function swigluBackward(..._args: unknown[]): never { throw new Error('swigluBackward (ts) not implemented yet'); }
