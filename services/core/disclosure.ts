import type { Agent, NativeEvent } from "./event.ts";

/**
 * Selective disclosure of staff identity (DESIGN.md "Entry v2: log time and selective
 * disclosure"). The agent fields that identify a person — the staff member, their account,
 * their workstation — are redactable in every `agents[i]`; everything a patient is owed under
 * CJEU C-579/21 (dates, organization, role, purpose) is not.
 */
export const REDACTABLE_AGENT_FIELDS = ["who", "userName", "altId", "network"] as const;
export type RedactableAgentField = (typeof REDACTABLE_AGENT_FIELDS)[number];

/** An agent whose redactable fields may be left out. */
export type AgentView = Omit<Agent, RedactableAgentField> &
  Partial<Pick<Agent, RedactableAgentField>>;

/** An event whose agents' redactable fields may be left out (what a patient may be shown). */
export type EventView = Omit<NativeEvent, "agents"> & { agents: AgentView[] };

/** `event` without any agent's redactable fields. */
export function withoutStaffIdentity(event: NativeEvent): EventView {
  return {
    ...event,
    agents: event.agents.map((a) => {
      const out: AgentView = { ...a };
      for (const field of REDACTABLE_AGENT_FIELDS) delete out[field];
      return out;
    }),
  };
}
