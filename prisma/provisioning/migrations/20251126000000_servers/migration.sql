-- AlterTable
ALTER TABLE `accounts` ADD COLUMN `status_message` VARCHAR(1024) NULL,
    ADD COLUMN `provider_account_id` VARCHAR(255) NULL,
    ADD COLUMN `validated_at` DATETIME(3) NULL,
    ADD COLUMN `discovered_at` DATETIME(3) NULL,
    ADD COLUMN `next_discovery_at` DATETIME(3) NULL,
    ADD COLUMN `servers_synced_at` DATETIME(3) NULL,
    ADD COLUMN `next_server_sync_at` DATETIME(3) NULL;

-- CreateIndex
CREATE INDEX `accounts_next_discovery_at_idx` ON `accounts`(`next_discovery_at`);

-- CreateIndex
CREATE INDEX `accounts_next_server_sync_at_idx` ON `accounts`(`next_server_sync_at`);

-- CreateTable
CREATE TABLE `account_regions` (
    `account_id` CHAR(26) NOT NULL,
    `region_id` VARCHAR(64) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `data_centers` JSON NOT NULL,
    `position` INTEGER NOT NULL,

    PRIMARY KEY (`account_id`, `region_id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `subscriptions` (
    `account_id` CHAR(26) NOT NULL,
    `region_id` VARCHAR(64) NOT NULL,
    `capability` VARCHAR(32) NOT NULL,
    `discovered_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`account_id`, `region_id`, `capability`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `catalog_products` (
    `account_id` CHAR(26) NOT NULL,
    `region_id` VARCHAR(64) NOT NULL,
    `product_id` VARCHAR(128) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `cpus` INTEGER NOT NULL,
    `memory_mb` INTEGER NOT NULL,
    `disk_gb` INTEGER NOT NULL,
    `hourly_price_micros` BIGINT NOT NULL,
    `accrues_when_stopped` BOOLEAN NOT NULL,
    `discovered_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`account_id`, `region_id`, `product_id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `catalog_images` (
    `account_id` CHAR(26) NOT NULL,
    `region_id` VARCHAR(64) NOT NULL,
    `image_id` VARCHAR(255) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `platform` VARCHAR(64) NOT NULL,
    `discovered_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`account_id`, `region_id`, `image_id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `account_events` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `account_id` CHAR(26) NOT NULL,
    `type` VARCHAR(64) NOT NULL,
    `region_id` VARCHAR(64) NULL,
    `job_id` CHAR(26) NULL,
    `message` VARCHAR(1024) NOT NULL,
    `details` JSON NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `account_events_account_id_id_idx`(`account_id`, `id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `servers` (
    `id` CHAR(26) NOT NULL,
    `account_id` CHAR(26) NOT NULL,
    `region_id` VARCHAR(64) NOT NULL,
    `data_center` VARCHAR(64) NOT NULL,
    `provider_id` VARCHAR(255) NULL,
    `name` VARCHAR(128) NOT NULL,
    `product_id` VARCHAR(128) NOT NULL,
    `image_id` VARCHAR(255) NOT NULL,
    `budget_code` VARCHAR(64) NOT NULL,
    `state` ENUM('PENDING', 'RUNNING', 'STOPPING', 'STOPPED', 'REBOOTING', 'TERMINATING', 'TERMINATED') NOT NULL DEFAULT 'PENDING',
    `origin` ENUM('LAUNCHED', 'DISCOVERED') NOT NULL DEFAULT 'LAUNCHED',
    `addresses` JSON NOT NULL,
    `details` JSON NOT NULL,
    `hourly_price_micros` BIGINT NOT NULL,
    `accrues_when_stopped` BOOLEAN NOT NULL,
    `agent_state` ENUM('NONE', 'PENDING', 'CONNECTED', 'UNREACHABLE') NOT NULL DEFAULT 'NONE',
    `launched_at` DATETIME(3) NULL,
    `terminated_at` DATETIME(3) NULL,
    `state_changed_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `created_by` VARCHAR(64) NOT NULL,
    `version` INTEGER NOT NULL DEFAULT 1,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    UNIQUE INDEX `servers_account_id_provider_id_key`(`account_id`, `provider_id`),
    INDEX `servers_account_id_state_idx`(`account_id`, `state`),
    INDEX `servers_state_idx`(`state`),
    INDEX `servers_budget_code_idx`(`budget_code`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `server_events` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `server_id` CHAR(26) NOT NULL,
    `type` VARCHAR(64) NOT NULL,
    `from_state` ENUM('PENDING', 'RUNNING', 'STOPPING', 'STOPPED', 'REBOOTING', 'TERMINATING', 'TERMINATED') NULL,
    `to_state` ENUM('PENDING', 'RUNNING', 'STOPPING', 'STOPPED', 'REBOOTING', 'TERMINATING', 'TERMINATED') NULL,
    `job_id` CHAR(26) NULL,
    `message` VARCHAR(1024) NOT NULL,
    `details` JSON NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `server_events_server_id_id_idx`(`server_id`, `id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `budget_events` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `code` VARCHAR(64) NOT NULL,
    `type` VARCHAR(64) NOT NULL,
    `job_id` CHAR(26) NULL,
    `message` VARCHAR(1024) NOT NULL,
    `details` JSON NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `budget_events_code_id_idx`(`code`, `id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- AddForeignKey
ALTER TABLE `account_regions` ADD CONSTRAINT `account_regions_account_id_fkey` FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `subscriptions` ADD CONSTRAINT `subscriptions_account_id_fkey` FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `catalog_products` ADD CONSTRAINT `catalog_products_account_id_fkey` FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `catalog_images` ADD CONSTRAINT `catalog_images_account_id_fkey` FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `servers` ADD CONSTRAINT `servers_account_id_fkey` FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON DELETE RESTRICT ON UPDATE CASCADE;
