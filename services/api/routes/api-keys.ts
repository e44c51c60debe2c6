import type { Express } from "express";
import type { ApiContext } from "../app.ts";
import { authorize } from "../auth.ts";
import { decodeUtf8, parseJson } from "../event-body.ts";
import { KeyIdParams, NewKeyBody, parseRequest } from "../schemas.ts";
import { rawBody, requireMediaType } from "./events.ts";

/** API key administration (admin only). The secret is in the creation answer and nowhere else. */
export function registerApiKeyRoutes(app: Express, ctx: ApiContext): void {
  const guard = [ctx.authenticate, authorize(ctx.access, "keys:manage")];

  app.post(
    "/v1/keys",
    ...guard,
    requireMediaType(["application/json"]),
    rawBody(16 * 1024),
    async (req, res) => {
      const body: unknown = req.body;
      const input = parseJson(Buffer.isBuffer(body) ? decodeUtf8(body) : "");
      const request = parseRequest(NewKeyBody, input);
      const created = await ctx.apiKeys.create(request);
      res.status(201).json(created);
    },
  );

  app.get("/v1/keys", ...guard, async (_req, res) => {
    res.json({ keys: await ctx.apiKeys.list() });
  });

  app.delete("/v1/keys/:id", ...guard, async (req, res) => {
    const { id } = parseRequest(KeyIdParams, { ...req.params });
    res.json({ key: await ctx.apiKeys.revoke(id) });
  });
}
