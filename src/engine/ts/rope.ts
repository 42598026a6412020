// STUB: replaced by the engine work.
export function rope(..._args: unknown[]): never { throw new Error('rope (ts) not implemented yet'); }
