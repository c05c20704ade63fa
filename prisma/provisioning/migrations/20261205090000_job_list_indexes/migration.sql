-- ListJobs pages by (created_at, id) under each filter; give every filter an index that ends in created_at, and keep
-- the account a job belongs to on the job itself instead of finding it through servers at read time.
ALTER TABLE `jobs` ADD COLUMN `account_id` CHAR(26) NULL;

UPDATE `jobs` SET `account_id` = `resource_id` WHERE `resource_type` = 'account';
UPDATE `jobs` j JOIN `servers` s ON s.`id` = j.`resource_id` SET j.`account_id` = s.`account_id` WHERE j.`resource_type` = 'server';
UPDATE `jobs` j JOIN `resources` r ON r.`id` = j.`resource_id` AND r.`type` = j.`resource_type` SET j.`account_id` = r.`account_id`;

DROP INDEX `jobs_state_updated_at_idx` ON `jobs`;
DROP INDEX `jobs_kind_state_idx` ON `jobs`;
CREATE INDEX `jobs_created_at_idx` ON `jobs`(`created_at`);
CREATE INDEX `jobs_state_created_at_idx` ON `jobs`(`state`, `created_at`);
CREATE INDEX `jobs_kind_created_at_idx` ON `jobs`(`kind`, `created_at`);
CREATE INDEX `jobs_account_id_created_at_idx` ON `jobs`(`account_id`, `created_at`);

-- ListServers of one account pages in id order.
CREATE INDEX `servers_account_id_id_idx` ON `servers`(`account_id`, `id`);
