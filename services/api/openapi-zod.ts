import { extendZodWithOpenApi } from "@asteasolutions/zod-to-openapi";
import { z } from "zod";

/**
 * zod with `.openapi()` metadata. zod 4 copies methods onto each schema when it is built, so the
 * extension must run before the API's request schemas are created: they import `z` from here.
 */
extendZodWithOpenApi(z);

export { z };
