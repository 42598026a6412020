// STUB: replaced by the engine work.
export function maxWindow(..._args: unknown[]): never { throw new Error('maxWindow (ts) not implemented yet'); }
export function topk(..._args: unknown[]): never { throw new Error('topk (ts) not implemented yet'); }
