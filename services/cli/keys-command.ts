/**
 * `veritrail keys create|list|revoke`: API key administration against a running Veritrail API
 * with an admin key (POST/GET/DELETE /v1/keys).
 *
 * `create` prints the new secret alone on stdout (so `export VT_WRITER=$(veritrail keys create
 * …)` works) and what it is on stderr; the secret is shown once and only its hash is stored.
 *
 * Exit code: 0 when done; 2 for a usage error, an unreachable API or an error answer (an unknown
 * or already revoked key id included).
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { z } from "zod";
import { API_KEY_ROLES, type NewApiKey } from "../ledger/api-keys.ts";
import { type ApiOptions, ApiCallError, apiJson, keyOption, urlOption } from "./api-client.ts";
import { type CliContext, EXIT_OK, EXIT_USAGE } from "./context.ts";

const KeyView = z.object({
  id: z.string(),
  role: z.enum(API_KEY_ROLES),
  scope: z.string().nullable(),
  createdAt: z.string(),
  revokedAt: z.string().optional(),
});
type KeyView = z.infer<typeof KeyView>;

const Created = z.object({ secret: z.string(), key: KeyView });
const Listed = z.object({ keys: z.array(KeyView) });
const Revoked = z.object({ key: KeyView });

interface CreateOptions extends ApiOptions {
  role: NewApiKey["role"];
  organization?: string;
  patient?: string;
  patientSystem?: string;
  json: boolean;
}

const KEY_ID = /^key_[0-9a-f]{16}$/;

function keyId(value: string): string {
  if (!KEY_ID.test(value))
    throw new InvalidArgumentError("must be a key id such as key_0123456789abcdef");
  return value;
}

/** "writer for org:st-mary-general", "patient 0x1f…", "admin". */
export function describeKey(key: KeyView): string {
  switch (key.role) {
    case "writer":
      return `writer for ${key.scope}`;
    case "patient":
      return `patient (subject ${key.scope})`;
    default:
      return key.role;
  }
}

/** The request body for POST /v1/keys; a usage error names the option that is missing or extra. */
export function newKeyRequest(opts: CreateOptions): NewApiKey {
  const extra = (option: string, value: unknown) => {
    if (value !== undefined)
      throw new InvalidArgumentError(`${option} does not apply to a ${opts.role} key`);
  };
  switch (opts.role) {
    case "writer":
      extra("--patient", opts.patient);
      extra("--patient-system", opts.patientSystem);
      if (opts.organization === undefined)
        throw new InvalidArgumentError("a writer key needs --organization <org>");
      return { role: "writer", organization: opts.organization };
    case "patient":
      extra("--organization", opts.organization);
      if (opts.patient === undefined)
        throw new InvalidArgumentError("a patient key needs --patient <identifier value>");
      return {
        role: "patient",
        patient: {
          ...(opts.patientSystem === undefined ? {} : { system: opts.patientSystem }),
          value: opts.patient,
        },
      };
    default:
      extra("--organization", opts.organization);
      extra("--patient", opts.patient);
      extra("--patient-system", opts.patientSystem);
      return { role: opts.role };
  }
}

function parsed<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new ApiCallError("the API's answer does not have the expected shape");
  return result.data;
}

async function guarded(
  ctx: CliContext,
  name: string,
  action: () => Promise<void>,
): Promise<number> {
  try {
    await action();
    return EXIT_OK;
  } catch (e) {
    if (e instanceof ApiCallError || e instanceof InvalidArgumentError) {
      ctx.stderr.write(`veritrail keys ${name}: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
}

function table(keys: KeyView[]): string {
  const rows = [
    ["ID", "ROLE", "SCOPE", "CREATED", "REVOKED"],
    ...keys.map((k) => [k.id, k.role, k.scope ?? "—", k.createdAt, k.revokedAt ?? "—"]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function registerKeysCommand(program: Command, ctx: CliContext): void {
  const keys = program
    .command("keys")
    .description("create, list and revoke API keys of a running Veritrail API (admin key)");

  keys
    .command("create")
    .description(
      "create an API key; prints its secret (shown once) on stdout, what it is on stderr",
    )
    .addOption(
      new Option("--role <role>", "admin, writer, auditor or patient")
        .choices(API_KEY_ROLES)
        .makeOptionMandatory(),
    )
    .option("--organization <org>", "writer: the organization it logs for")
    .option("--patient <value>", "patient: the patient identifier's value, e.g. an MRN")
    .option("--patient-system <uri>", "patient: the identifier's system (URI), if any")
    .option("--json", "print the API's answer as JSON instead", false)
    .addOption(urlOption())
    .addOption(keyOption("an admin API key"))
    .action(async (opts: CreateOptions) => {
      ctx.exitCode = await guarded(ctx, "create", async () => {
        const body = newKeyRequest(opts);
        const created = parsed(
          Created,
          await apiJson(opts, "POST", "/v1/keys", { body, expect: 201 }),
        );
        if (opts.json) {
          ctx.stdout.write(`${JSON.stringify(created)}\n`);
          return;
        }
        ctx.stderr.write(
          `created ${created.key.id} (${describeKey(created.key)}); its secret, shown once (only its hash is stored):\n`,
        );
        ctx.stdout.write(`${created.secret}\n`);
      });
    });

  keys
    .command("list")
    .description("list the API keys (never secrets), revoked ones included")
    .option("--json", "print the API's answer as JSON", false)
    .addOption(urlOption())
    .addOption(keyOption("an admin API key"))
    .action(async (opts: ApiOptions & { json: boolean }) => {
      ctx.exitCode = await guarded(ctx, "list", async () => {
        const { keys: list } = parsed(Listed, await apiJson(opts, "GET", "/v1/keys"));
        if (opts.json) {
          ctx.stdout.write(`${JSON.stringify({ keys: list })}\n`);
          return;
        }
        const revoked = list.filter((k) => k.revokedAt !== undefined).length;
        ctx.stdout.write(`${table(list)}\n`);
        ctx.stdout.write(
          `${list.length} key${list.length === 1 ? "" : "s"}, ${list.length - revoked} live, ${revoked} revoked\n`,
        );
      });
    });

  keys
    .command("revoke")
    .description("revoke an API key: it stops working at once")
    .argument("<id>", "the key's id (key_…), as `keys list` shows it", keyId)
    .option("--json", "print the API's answer as JSON", false)
    .addOption(urlOption())
    .addOption(keyOption("an admin API key"))
    .action(async (id: string, opts: ApiOptions & { json: boolean }) => {
      ctx.exitCode = await guarded(ctx, "revoke", async () => {
        const { key } = parsed(
          Revoked,
          await apiJson(opts, "DELETE", `/v1/keys/${encodeURIComponent(id)}`),
        );
        if (opts.json) {
          ctx.stdout.write(`${JSON.stringify({ key })}\n`);
          return;
        }
        ctx.stdout.write(`revoked ${key.id} (${describeKey(key)}) at ${key.revokedAt}\n`);
      });
    });
}
