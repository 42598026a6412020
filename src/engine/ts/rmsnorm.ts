// STUB: replaced by the engine work.
export function rmsnormForward(..._args: unknown[]): never { throw new Error('rmsnormForward (ts) not implemented yet'); }
export function rmsnormBackward(..._args: unknown[]): never { throw new Error('rmsnormBackward (ts) not implemented yet'); }
