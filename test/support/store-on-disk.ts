/**
 * A LedgerStore on a LevelDB directory of its own for each test of a suite: opened before each
 * test, closed and removed after it. Call it in a `describe` body.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { LedgerStore } from "../../services/store/ledger-store.ts";

export interface StoreOnDisk {
  /** The store of the running test. */
  readonly store: LedgerStore;
  /** Its directory. */
  readonly dir: string;
  /** Closes the store and opens its directory again (what a restart does). */
  reopen(): Promise<LedgerStore>;
}

export function storeOnDisk(name: string): StoreOnDisk {
  let dir: string | undefined;
  let store: LedgerStore | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), `veritrail-${name}-`));
    store = await LedgerStore.open(dir);
  });
  afterEach(async () => {
    if (store?.isOpen) await store.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    store = undefined;
    dir = undefined;
  });
  return {
    get store() {
      if (!store) throw new Error("storeOnDisk: used outside a test");
      return store;
    },
    get dir() {
      if (dir === undefined) throw new Error("storeOnDisk: used outside a test");
      return dir;
    },
    async reopen() {
      if (store?.isOpen) await store.close();
      store = await LedgerStore.open(this.dir);
      return store;
    },
  };
}
