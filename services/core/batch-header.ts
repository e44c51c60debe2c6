import { AbiCoder, keccak256 } from "ethers";

/**
 * A batch header exactly as the registry stores it, in the registry's field order (DESIGN.md
 * "Batches and anchoring"): the one type the ledger seals, the chain client anchors, bundles
 * carry (core/bundle.ts parses it) and the verifier checks. Hex fields are 0x-prefixed lowercase.
 */
export interface BatchHeader {
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
export function batchHeaderHash(h: BatchHeader): string {
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
