// STUB: replaced by the engine work.
export function svd(..._args: unknown[]): never { throw new Error('svd (ts) not implemented yet'); }
export function qr(..._args: unknown[]): never { throw new Error('qr (ts) not implemented yet'); }
