// STUB: replaced by the engine work.
export function adamw(..._args: unknown[]): never { throw new Error('adamw (ts) not implemented yet'); }
