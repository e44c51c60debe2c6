import { AbiCoder, keccak256 } from "ethers";

/** The fields of a batch header in the registry's order (DESIGN.md "Batches and anchoring"). */
export interface BatchHeaderFields {
  logId: string;
  batchNo: number;
  firstSeq: number;
  count: number;
  eventsRoot: string;
  indexRoot: string;
}

const HEADER_TYPES = ["bytes32", "uint64", "uint64", "uint32", "bytes32", "bytes32"] as const;

/**
 * What the registry stores per batch: keccak256(abi.encode(logId, batchNo, firstSeq, count,
 * eventsRoot, indexRoot)). The anchor loop compares it with the chain and the verifier checks
 * bundles against it, so both use this one definition (a contract test pins it to `headerHash`).
 */
export function batchHeaderHash(h: BatchHeaderFields): string {
  return keccak256(
    AbiCoder.defaultAbiCoder().encode(HEADER_TYPES, [
      h.logId,
      h.batchNo,
      h.firstSeq,
      h.count,
      h.eventsRoot,
      h.indexRoot,
    ]),
  );
}
