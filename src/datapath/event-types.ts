// Moved to src/monitor/event-types.ts. This re-export remains only for src/agent/run-agent.ts,
// which is being rewritten elsewhere; delete it once nothing imports this path.
export * from '../monitor/event-types.js';
