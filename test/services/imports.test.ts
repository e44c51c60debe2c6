/**
 * The rooms of services/ and who may use whom (docs/architecture.md). The verifier's own rule
 * (core and ethers only) is in verifier/imports.test.ts; these are the rest.
 */
import { expect } from "chai";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { importSpecifiers } from "./verifier/imports.test.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const SERVICES = path.join(ROOT, "services");
const room = (name: string) => path.join(SERVICES, name);
const KEY_LAYOUT = path.join(SERVICES, "store/keys.ts");

/**
 * Ledger files that still build LevelDB keys themselves. The store is to own its encodings
 * behind typed methods; until it does, this list may only shrink: a new file importing the key
 * layout fails, and so does a listed file that no longer needs it (take it off the list).
 */
const STILL_USING_KEY_LAYOUT = [
  "services/ledger/audit.ts",
  "services/ledger/backup.ts",
  "services/ledger/index-updater.ts",
  "services/ledger/ledger.ts",
  "services/ledger/lost-ranges.ts",
  "services/ledger/subject-index-store.ts",
];

interface SourceFile {
  file: string;
  source: string;
  /** Relative imports resolved to absolute paths. */
  imports: string[];
  /** The same, without `import type` / `export type` (what runs). */
  runtimeImports: string[];
}

async function sourceFiles(): Promise<SourceFile[]> {
  const entries = await readdir(SERVICES, { withFileTypes: true, recursive: true });
  const files = entries
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => path.join(e.parentPath, e.name));
  return Promise.all(
    files.map(async (file) => {
      const source = await readFile(file, "utf8");
      const resolve = (specs: string[]) =>
        specs.filter((s) => s.startsWith(".")).map((s) => path.resolve(path.dirname(file), s));
      return {
        file,
        source,
        imports: resolve(importSpecifiers(source)),
        runtimeImports: resolve(importSpecifiers(withoutTypeImports(source))),
      };
    }),
  );
}

/** The source without type-only imports and re-exports (they vanish when the code runs). */
function withoutTypeImports(source: string): string {
  return source
    .replace(/^\s*(import|export)\s+type\s[^;]*;/gm, "")
    .replace(/^\s*import\s*\{([^}]*)\}\s*from\s*["'][^"']+["'];/gm, (stmt, names: string) =>
      names
        .split(",")
        .map((n) => n.trim())
        .filter((n) => n.length > 0)
        .every((n) => n.startsWith("type "))
        ? ""
        : stmt,
    );
}

const inside = (dir: string) => (target: string) => target.startsWith(dir + path.sep);
const rel = (file: string) => path.relative(ROOT, file);
const edges = (f: SourceFile, targets: string[]) =>
  targets.map((t) => `${rel(f.file)} → ${rel(t)}`);

/** Imports from anchoring/ into a room above it or beside it (it is composed by system.ts). */
function anchoringReachesUp(files: SourceFile[]): string[] {
  const above = ["api", "cli", "peers", "verifier"].map((r) => inside(room(r)));
  return files
    .filter((f) => inside(room("anchoring"))(f.file))
    .flatMap((f) =>
      edges(
        f,
        f.imports.filter((t) => above.some((isIn) => isIn(t))),
      ),
    );
}

/** Files outside anchoring/ and system.ts that import anchoring/. */
function anchoringImporters(files: SourceFile[]): string[] {
  return files
    .filter(
      (f) => !inside(room("anchoring"))(f.file) && f.file !== path.join(SERVICES, "system.ts"),
    )
    .flatMap((f) => edges(f, f.imports.filter(inside(room("anchoring")))));
}

/** What anchoring/reconcile.ts imports at run time besides core/ and ethers. */
function reconcileIo(files: SourceFile[]): string[] {
  const reconcile = files.find((f) => f.file === path.join(SERVICES, "anchoring/reconcile.ts"));
  if (!reconcile) return ["services/anchoring/reconcile.ts is missing"];
  return importSpecifiers(withoutTypeImports(reconcile.source))
    .filter((spec) =>
      spec.startsWith(".")
        ? !inside(room("core"))(path.resolve(path.dirname(reconcile.file), spec))
        : spec !== "ethers",
    )
    .map((spec) => `${rel(reconcile.file)} → ${spec}`);
}

describe("services/: which room may use which", () => {
  let files: SourceFile[];
  before(async () => {
    files = await sourceFiles();
    expect(files.length).to.be.greaterThan(50);
  });

  it("the ledger never imports the verifier (the audit is handed its chain reader)", () => {
    const offenders = files
      .filter((f) => inside(room("ledger"))(f.file))
      .flatMap((f) =>
        f.imports.filter(inside(room("verifier"))).map((t) => `${rel(f.file)} → ${rel(t)}`),
      );
    expect(offenders).to.deep.equal([]);
  });

  it("the CLI and the API never reach the store: no import of store/, no ledger.store", () => {
    const offenders = files
      .filter((f) => inside(room("cli"))(f.file) || inside(room("api"))(f.file))
      .flatMap((f) => [
        ...f.imports.filter(inside(room("store"))).map((t) => `${rel(f.file)} → ${rel(t)}`),
        ...(/\bledger\.store\b/.test(f.source) ? [`${rel(f.file)} uses ledger.store`] : []),
      ]);
    expect(offenders).to.deep.equal([]);
  });

  it("only the store imports its key layout, but for the ledger files still listed", () => {
    const importers = files
      .filter((f) => !inside(room("store"))(f.file) && f.imports.includes(KEY_LAYOUT))
      .map((f) => rel(f.file))
      .sort();
    expect(importers).to.deep.equal(STILL_USING_KEY_LAYOUT);
  });

  it("anchoring uses core, store, chain and the ledger; never the API, CLI, peers or verifier", () => {
    expect(anchoringReachesUp(files)).to.deep.equal([]);
  });

  it("only system.ts composes anchoring: the ledger, API and CLI never import it", () => {
    expect(anchoringImporters(files)).to.deep.equal([]);
  });

  it("the reconcile has no I/O: at run time it imports core and ethers only", () => {
    expect(reconcileIo(files)).to.deep.equal([]);
  });

  it("each anchoring rule fails when broken", () => {
    const file = (name: string, imports: string[], source = ""): SourceFile => {
      const at = path.join(SERVICES, name);
      const resolved = imports.map((s) => path.resolve(path.dirname(at), s));
      return { file: at, source, imports: resolved, runtimeImports: resolved };
    };
    expect(anchoringReachesUp([file("anchoring/x.ts", ["../api/app.ts"])])).to.deep.equal([
      "services/anchoring/x.ts → services/api/app.ts",
    ]);
    expect(anchoringReachesUp([file("anchoring/x.ts", ["../verifier/rpc.ts"])])).to.have.length(1);
    expect(
      anchoringReachesUp([file("anchoring/x.ts", ["../chain/registry-client.ts"])]),
    ).to.deep.equal([]);
    expect(
      anchoringImporters([file("ledger/x.ts", ["../anchoring/anchor-loop.ts"])]),
    ).to.deep.equal(["services/ledger/x.ts → services/anchoring/anchor-loop.ts"]);
    expect(anchoringImporters([file("api/x.ts", ["../anchoring/alarms.ts"])])).to.have.length(1);
    expect(anchoringImporters([file("system.ts", ["./anchoring/anchor-loop.ts"])])).to.deep.equal(
      [],
    );
    const reconcileImporting = (...specs: string[]) =>
      reconcileIo([
        file(
          "anchoring/reconcile.ts",
          [],
          specs.map((s) => `import { x } from "${s}";`).join("\n"),
        ),
      ]);
    expect(reconcileImporting("../store/ledger-store.ts")).to.have.length(1);
    expect(reconcileImporting("../chain/registry-client.ts")).to.have.length(1);
    expect(reconcileImporting("node:fs/promises")).to.have.length(1);
    expect(reconcileImporting("../core/batch-header.ts", "ethers")).to.deep.equal([]);
  });

  it("no import cycles among the modules that run (type-only imports aside)", () => {
    const graph = new Map(files.map((f) => [f.file, f.runtimeImports]));
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, "open");
      stack.push(file);
      for (const next of graph.get(file) ?? []) {
        if (!graph.has(next)) continue;
        if (state.get(next) === "open")
          cycles.push([...stack.slice(stack.indexOf(next)), next].map(rel).join(" → "));
        else if (state.get(next) === undefined) visit(next);
      }
      stack.pop();
      state.set(file, "done");
    };
    for (const file of graph.keys()) if (state.get(file) === undefined) visit(file);
    expect(cycles).to.deep.equal([]);
  });

  it("the cycle check sees a cycle through a value import, not through a type import", () => {
    const value =
      'import { a } from "./a.ts";\nimport { type B } from "./b.ts";\nimport type { C } from "./c.ts";';
    expect(importSpecifiers(withoutTypeImports(value))).to.deep.equal(["./a.ts"]);
  });
});
