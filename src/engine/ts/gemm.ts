// STUB: replaced by the engine work.
export function gemm(..._args: unknown[]): never { throw new Error('gemm (ts) not implemented yet'); }
export function gemmStridedBatched(..._args: unknown[]): never { throw new Error('gemmStridedBatched (ts) not implemented yet'); }
