// STUB: replaced by the engine work.
export function crossEntropy(..._args: unknown[]): never { throw new Error('crossEntropy (ts) not implemented yet'); }
