-- Held children are few at any time: the reconciler finds those of finished parents without scanning every child.
CREATE INDEX `jobs_held_state_idx` ON `jobs`(`held`, `state`);
