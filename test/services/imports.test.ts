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

/** LevelDB's packages: only the store opens or reads the database. */
const LEVELDB_PACKAGES = new Set(["classic-level", "abstract-level", "level"]);

interface SourceFile {
  file: string;
  source: string;
  /** Every import specifier as written (packages too). */
  specifiers: string[];
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
        specifiers: importSpecifiers(source),
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

/** The source without its comments (a comment may name what the code must not use). */
function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
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

/** Files outside store/ that import the store's key layout. */
function keyLayoutImporters(files: SourceFile[]): string[] {
  return files
    .filter((f) => !inside(room("store"))(f.file))
    .flatMap((f) =>
      edges(
        f,
        f.imports.filter((t) => t === KEY_LAYOUT),
      ),
    );
}

/** Files outside store/ that import LevelDB or use a `.db` handle. */
function levelDbReachers(files: SourceFile[]): string[] {
  return files
    .filter((f) => !inside(room("store"))(f.file))
    .flatMap((f) => [
      ...f.specifiers.filter((s) => LEVELDB_PACKAGES.has(s)).map((s) => `${rel(f.file)} → ${s}`),
      ...(/\.db\b/.test(withoutComments(f.source)) ? [`${rel(f.file)} uses .db`] : []),
    ]);
}

/** Files outside store/ that call the store's by-key reads and writes. */
function rawStoreReaders(files: SourceFile[]): string[] {
  const raw = /\.(getRaw|getManyRaw|getJson|putJsonOp|scan|scanKeys|lastKey)\(/;
  return files
    .filter((f) => !inside(room("store"))(f.file) && raw.test(withoutComments(f.source)))
    .map((f) => rel(f.file));
}

/** A made-up source file under services/, for checking that a rule fails when broken. */
function file(name: string, imports: string[], source = ""): SourceFile {
  const at = path.join(SERVICES, name);
  const resolved = imports.map((s) => path.resolve(path.dirname(at), s));
  return { file: at, source, specifiers: imports, imports: resolved, runtimeImports: resolved };
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

  const storeRules: Array<[string, (files: SourceFile[]) => string[]]> = [
    ["only the store imports its key layout", keyLayoutImporters],
    ["only the store opens LevelDB or reaches its handle (`.db`)", levelDbReachers],
    ["outside the store, nobody reads LevelDB by key: only typed store methods", rawStoreReaders],
  ];
  for (const [rule, offenders] of storeRules)
    it(rule, () => expect(offenders(files)).to.deep.equal([]));

  it("each store rule fails when broken", () => {
    expect(keyLayoutImporters([file("ledger/x.ts", ["../store/keys.ts"])])).to.deep.equal([
      "services/ledger/x.ts → services/store/keys.ts",
    ]);
    expect(keyLayoutImporters([file("anchoring/x.ts", ["../store/keys.ts"])])).to.have.length(1);
    expect(keyLayoutImporters([file("store/x.ts", ["./keys.ts"])])).to.deep.equal([]);
    expect(levelDbReachers([file("ledger/x.ts", ["classic-level"])])).to.deep.equal([
      "services/ledger/x.ts → classic-level",
    ]);
    expect(
      levelDbReachers([file("ledger/x.ts", [], "const it = this.store.db.iterator({});")]),
    ).to.deep.equal(["services/ledger/x.ts uses .db"]);
    expect(
      levelDbReachers([file("ledger/x.ts", [], "/** never `store.db` */\nconst a = 1;")]),
    ).to.deep.equal([]);
    expect(
      levelDbReachers([file("store/x.ts", ["classic-level"], "this.db.get(k)")]),
    ).to.deep.equal([]);
    expect(
      rawStoreReaders([file("ledger/x.ts", [], 'await store.getRaw("e:000000000000");')]),
    ).to.deep.equal(["services/ledger/x.ts"]);
    expect(
      rawStoreReaders([file("ledger/x.ts", [], "for await (const kv of store.scan({})) f(kv);")]),
    ).to.have.length(1);
    expect(rawStoreReaders([file("ledger/x.ts", [], "await store.getEntry(3);")])).to.deep.equal(
      [],
    );
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
