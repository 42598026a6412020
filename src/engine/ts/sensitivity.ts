// STUB: replaced by the engine work.
export function sensAccumulate(..._args: unknown[]): never { throw new Error('sensAccumulate (ts) not implemented yet'); }
export function sum(..._args: unknown[]): never { throw new Error('sum (ts) not implemented yet'); }
export function rowSums(..._args: unknown[]): never { throw new Error('rowSums (ts) not implemented yet'); }
export function colSums(..._args: unknown[]): never { throw new Error('colSums (ts) not implemented yet'); }
