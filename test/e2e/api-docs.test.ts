/**
 * docs/api.md is complete and its examples are true: every operation of `/openapi.json` has a
 * section (`### \`METHOD /path\``) with at least one request (a ```sh block of one command) and
 * its answer (the ```http block right after it: status line, Content-Type, body); the answer's
 * status is one the OpenAPI document lists for that operation; and every ```sh block of the
 * document, run in order as a reader would (test/support/shell-session.ts) against a real
 * `npm start`, exits 0 and answers the documented status and Content-Type.
 */
import { expect } from "chai";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildOpenApiDocument } from "../../services/api/openapi.ts";
import { loadConfig } from "../../services/config.ts";
import { type Started, stop } from "../support/npm-start.ts";
import {
  type Service,
  requireTools,
  runCommands,
  shellCommands,
  startForCommands,
} from "../support/shell-session.ts";

const REPO = path.resolve(import.meta.dirname, "../..");
const METHODS = ["get", "post", "put", "patch", "delete"] as const;

/** Routes the service serves outside the OpenAPI document (the document itself and its page). */
const NOT_IN_OPENAPI = new Set(["GET /openapi.json", "GET /docs"]);

interface Exchange {
  command: string;
  /** The documented answer: status code and media type (Content-Type without parameters). */
  status: number;
  mediaType: string;
}

interface Section {
  /** "POST /v1/events/:seq/erasure" */
  route: string;
  exchanges: Exchange[];
}

interface ApiDoc {
  sections: Section[];
  /** Every ```sh command in document order; request commands are in `sections` too. */
  commands: string[];
}

const mediaTypeOf = (contentType: string) => contentType.split(";")[0]!.trim().toLowerCase();

/** Parses docs/api.md: route sections, and request/answer pairs in order. */
export function parseApiDoc(markdown: string): ApiDoc {
  const sections: Section[] = [];
  const commands: string[] = [];
  const fence = /^```(\w*)\n([\s\S]*?)^```\n/gm;
  const headings = [...markdown.matchAll(/^(#{2,3}) (.*)$/gm)];
  const sectionAt = (offset: number): Section | undefined => {
    const heading = headings.filter((h) => h.index <= offset).at(-1);
    if (!heading || heading[1] !== "###") return undefined;
    const route = /^`(GET|POST|PUT|PATCH|DELETE) (\/\S*)`$/.exec(heading[2]!.trim());
    if (!route) return undefined;
    const name = `${route[1]} ${route[2]}`;
    let section = sections.find((s) => s.route === name);
    if (!section) sections.push((section = { route: name, exchanges: [] }));
    return section;
  };
  for (const h of headings) sectionAt(h.index);
  let pending: { command: string; section: Section | undefined } | undefined;
  for (const block of markdown.matchAll(fence)) {
    const [, lang, body] = block;
    if (lang === "sh") {
      const inBlock = shellCommands(body!).map((c) => c.command);
      commands.push(...inBlock);
      pending =
        inBlock.length === 1
          ? { command: inBlock[0]!, section: sectionAt(block.index) }
          : undefined;
    } else if (lang === "http") {
      if (!pending) throw new Error(`an answer without a one-command request before it:\n${body}`);
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(body!);
      const contentType = /^Content-Type: (.+)$/m.exec(body!);
      if (!status || !contentType)
        throw new Error(`an answer without a status line or Content-Type:\n${body}`);
      if (!pending.section)
        throw new Error(`an answer outside a route section:\n${pending.command}`);
      pending.section.exchanges.push({
        command: pending.command,
        status: Number(status[1]),
        mediaType: mediaTypeOf(contentType[1]!),
      });
      pending = undefined;
    } else {
      pending = undefined;
    }
  }
  return { sections, commands };
}

/** "/v1/events/{seq}/proof" → "/v1/events/:seq/proof" (the form the docs and Express use). */
const expressPath = (openApiPath: string) => openApiPath.replace(/\{(\w+)\}/g, ":$1");

/** Whether a curl command requests `route` ("GET /v1/events/:seq"): method and URL path. */
export function requests(command: string, route: string): boolean {
  const [method, template] = route.split(" ") as [string, string];
  const pattern = template.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:\w+/g, "[^/?\"'\\s]+");
  const url = new RegExp(`localhost:8080${pattern}(?:[?"'\\s]|$)`);
  // The last curl of a pipeline is the request (an earlier one may fetch its body).
  const last = command.slice(command.lastIndexOf("curl "));
  const lastMethod = /-X (\w+)/.exec(last)?.[1] ?? "GET";
  return lastMethod === method && url.test(last);
}

function openApiOperations(): Map<string, Set<number>> {
  const doc = buildOpenApiDocument(loadConfig({}));
  const out = new Map<string, Set<number>>();
  for (const [p, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = (item as Record<string, { responses?: Record<string, unknown> }>)[method];
      if (!op) continue;
      out.set(
        `${method.toUpperCase()} ${expressPath(p)}`,
        new Set(Object.keys(op.responses ?? {}).map(Number)),
      );
    }
  }
  return out;
}

describe("docs/api.md: every route, with a request and an answer that are true", function () {
  this.timeout(300_000);
  let doc: ApiDoc;
  let work: string;
  let started: Started | undefined;

  before(async () => {
    doc = parseApiDoc(await readFile(path.join(REPO, "docs/api.md"), "utf8"));
    work = await mkdtemp(path.join(tmpdir(), "veritrail-api-docs-"));
  });
  after(async () => {
    if (started) await stop(started, "SIGKILL").catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it("has a section for every operation of /openapi.json, each with a request and its answer", () => {
    const operations = openApiOperations();
    const documented = new Set(doc.sections.map((s) => s.route));
    const missing = [...operations.keys()].filter((op) => !documented.has(op));
    expect(missing, "routes of /openapi.json without a section in docs/api.md").to.deep.equal([]);
    const unknown = [...documented].filter((r) => !operations.has(r) && !NOT_IN_OPENAPI.has(r));
    expect(unknown, "sections of docs/api.md for routes the API does not have").to.deep.equal([]);
    for (const section of doc.sections) {
      expect(section.exchanges.length, `${section.route}: a request and its answer`).to.be.above(0);
      for (const x of section.exchanges) {
        expect(
          requests(x.command, section.route),
          `${section.route} requested by:\n${x.command}`,
        ).to.equal(true);
        const allowed = operations.get(section.route);
        if (allowed)
          expect([...allowed], `${section.route}: answered ${x.status} in the docs`).to.include(
            x.status,
          );
      }
    }
  });

  it("the parser and the request matcher are strict", () => {
    expect(
      requests("curl -si localhost:8080/v1/events/0/proof -H x", "GET /v1/events/:seq/proof"),
    ).to.equal(true);
    expect(
      requests("curl -si localhost:8080/v1/events/0 -H x", "GET /v1/events/:seq/proof"),
    ).to.equal(false);
    expect(requests("curl -si -X POST localhost:8080/v1/keys", "GET /v1/keys")).to.equal(false);
    expect(() => parseApiDoc("### `GET /x`\n\n```http\nHTTP/1.1 200 OK\n```\n")).to.throw(
      /without a one-command request/,
    );
    const one = parseApiDoc(
      "### `GET /x`\n\n```sh\ncurl -si localhost:8080/x\n```\n\n```http\nHTTP/1.1 200 OK\nContent-Type: text/plain\n\nhi\n```\n",
    );
    expect(one.sections).to.deep.equal([
      {
        route: "GET /x",
        exchanges: [{ command: "curl -si localhost:8080/x", status: 200, mediaType: "text/plain" }],
      },
    ]);
  });

  it("every request, run in order against a real npm start, answers the documented status and Content-Type", async () => {
    requireTools("bash", "curl");
    let service: Service;
    ({ started, service } = await startForCommands(work));
    const results = await runCommands(doc.commands, service, work);
    const exchanges = new Map(
      doc.sections.flatMap((s) => s.exchanges.map((x) => [x.command, { ...x, route: s.route }])),
    );
    let checked = 0;
    for (const { command, output, exitCode } of results) {
      const where = `docs/api.md:\n${command}\n--- answered ---\n${output.slice(0, 2_000)}`;
      expect(exitCode, where).to.equal(0);
      const x = exchanges.get(command);
      if (!x) continue;
      const status = /^HTTP\/1\.1 (\d{3})/.exec(output)?.[1];
      const contentType = /^content-type: (.+?)\r?$/im.exec(output)?.[1];
      expect(Number(status), where).to.equal(x.status);
      expect(mediaTypeOf(contentType ?? ""), where).to.equal(x.mediaType);
      checked++;
    }
    expect(checked).to.equal(exchanges.size);
    expect(await stop(started)).to.equal(0);
    started = undefined;
  });
});
