-- AlterTable
ALTER TABLE `jobs` ADD COLUMN `parent_id` CHAR(26) NULL,
    ADD COLUMN `held` BOOLEAN NOT NULL DEFAULT false;

-- CreateIndex
CREATE INDEX `jobs_parent_id_held_state_idx` ON `jobs`(`parent_id`, `held`, `state`);
