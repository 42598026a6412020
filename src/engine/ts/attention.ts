// STUB: replaced by the engine work.
export function attentionForward(..._args: unknown[]): never { throw new Error('attentionForward (ts) not implemented yet'); }
export function attentionBackward(..._args: unknown[]): never { throw new Error('attentionBackward (ts) not implemented yet'); }
