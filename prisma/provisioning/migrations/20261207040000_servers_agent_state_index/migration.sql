-- ListServers by agent state (e.g. the fleet's UNREACHABLE agents): a range read of the index in id order, as for the
-- other filters, instead of a walk of every server.
CREATE INDEX `servers_agent_state_idx` ON `servers`(`agent_state`);
