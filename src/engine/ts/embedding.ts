// STUB: replaced by the engine work.
export function embeddingForward(..._args: unknown[]): never { throw new Error('embeddingForward (ts) not implemented yet'); }
export function embeddingBackward(..._args: unknown[]): never { throw new Error('embeddingBackward (ts) not implemented yet'); }
