-- The inventory's retention (inventory.retentionDays) deletes servers terminated and resources deleted longest ago:
-- these indexes find them without reading every terminated server or deleted resource.
CREATE INDEX `servers_state_state_changed_at_idx` ON `servers`(`state`, `state_changed_at`);

CREATE INDEX `resources_state_state_changed_at_idx` ON `resources`(`state`, `state_changed_at`);
