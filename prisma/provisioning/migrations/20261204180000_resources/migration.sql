-- AlterTable
ALTER TABLE `accounts` ADD COLUMN `resources_synced_at` DATETIME(3) NULL,
    ADD COLUMN `next_resource_sync_at` DATETIME(3) NULL;

-- CreateIndex
CREATE INDEX `accounts_next_resource_sync_at_idx` ON `accounts`(`next_resource_sync_at`);

-- CreateTable
CREATE TABLE `resources` (
    `id` CHAR(26) NOT NULL,
    `account_id` CHAR(26) NOT NULL,
    `region_id` VARCHAR(64) NOT NULL,
    `type` VARCHAR(32) NOT NULL,
    `provider_id` VARCHAR(255) NULL,
    `name` VARCHAR(255) NOT NULL,
    `state` VARCHAR(32) NOT NULL,
    `origin` VARCHAR(16) NOT NULL,
    `budget_code` VARCHAR(64) NOT NULL,
    `tags` JSON NOT NULL,
    `details` JSON NOT NULL,
    `client_token` VARCHAR(64) NULL,
    `hourly_price_micros` BIGINT NOT NULL,
    `created_by` VARCHAR(64) NOT NULL,
    `version` INTEGER NOT NULL DEFAULT 1,
    `state_changed_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `deleted_at` DATETIME(3) NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    UNIQUE INDEX `resources_account_id_type_provider_id_key`(`account_id`, `type`, `provider_id`),
    INDEX `resources_account_id_type_state_idx`(`account_id`, `type`, `state`),
    INDEX `resources_type_state_idx`(`type`, `state`),
    INDEX `resources_budget_code_idx`(`budget_code`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `resource_events` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `resource_id` CHAR(26) NOT NULL,
    `type` VARCHAR(64) NOT NULL,
    `from_state` VARCHAR(32) NULL,
    `to_state` VARCHAR(32) NULL,
    `job_id` CHAR(26) NULL,
    `message` VARCHAR(1024) NOT NULL,
    `details` JSON NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `resource_events_resource_id_id_idx`(`resource_id`, `id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- AddForeignKey
ALTER TABLE `resources` ADD CONSTRAINT `resources_account_id_fkey` FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON DELETE RESTRICT ON UPDATE CASCADE;
