import type { BatchHeader } from "../core/batch-header.ts";

/** sealed → submitted → anchored; `sealed` again if a reorg removed the anchoring block. */
export type BatchState = "sealed" | "submitted" | "anchored";

export interface AnchorRecord {
  chainId: number;
  contract: string;
  txHash: string;
  blockNumber: number;
  blockHash: string;
  gasUsed: number;
  anchoredAt: string;
}

export interface SubmissionRecord {
  chainId: number;
  contract: string;
  txHash: string;
  nonce: number;
  submittedAt: string;
  attempts: number;
}

export interface BatchRecord {
  header: BatchHeader;
  state: BatchState;
  sealedAt: string;
  /**
   * Levels per stored tile of the batch's Merkle nodes (node-layout.ts). Absent on batches sealed
   * before tiles: their nodes are stored as level chunks of LEVEL_CHUNK_NODES.
   */
  tileHeight?: number;
  submission?: SubmissionRecord;
  anchor?: AnchorRecord;
  /**
   * Anchors this batch had (with the required confirmations) that a deeper reorg removed, oldest
   * first. Bundles handed out before name one of them (txHash, blockNumber); this says which
   * block they relied on and that it is gone.
   */
  reorgedAnchors?: AnchorRecord[];
}

/** Nodes per stored chunk of a Merkle level in the older layout: 256 × 32 bytes = 8 KiB values. */
export const LEVEL_CHUNK_NODES = 256;
