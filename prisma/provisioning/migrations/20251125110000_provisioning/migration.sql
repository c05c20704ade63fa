-- CreateTable
CREATE TABLE `clouds` (
    `id` CHAR(26) NOT NULL,
    `name` VARCHAR(128) NOT NULL,
    `driver` VARCHAR(64) NOT NULL,
    `endpoint` VARCHAR(2048) NOT NULL,
    `version` INTEGER NOT NULL DEFAULT 1,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    UNIQUE INDEX `clouds_name_key`(`name`),
    INDEX `clouds_driver_idx`(`driver`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `cloud_regions` (
    `cloud_id` CHAR(26) NOT NULL,
    `region_id` VARCHAR(64) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `data_centers` JSON NOT NULL,
    `position` INTEGER NOT NULL,

    PRIMARY KEY (`cloud_id`, `region_id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `budget_codes` (
    `code` VARCHAR(64) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `finance_code` VARCHAR(64) NOT NULL,
    `hard_quota_cents` BIGINT NOT NULL,
    `soft_quota_cents` BIGINT NOT NULL,
    `state` ENUM('ACTIVE', 'DISABLED') NOT NULL DEFAULT 'ACTIVE',
    `current_usage_cents` BIGINT NOT NULL,
    `projected_usage_cents` BIGINT NOT NULL,
    `version` INTEGER NOT NULL DEFAULT 1,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`code`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `budget_code_grants` (
    `code` VARCHAR(64) NOT NULL,
    `user_id` CHAR(26) NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `budget_code_grants_user_id_idx`(`user_id`),
    PRIMARY KEY (`code`, `user_id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `accounts` (
    `id` CHAR(26) NOT NULL,
    `name` VARCHAR(128) NOT NULL,
    `cloud_id` CHAR(26) NOT NULL,
    `credential_id` VARCHAR(64) NOT NULL,
    `default_budget_code` VARCHAR(64) NULL,
    `status` ENUM('PENDING', 'ACTIVE', 'FAILED', 'DISABLED') NOT NULL DEFAULT 'PENDING',
    `version` INTEGER NOT NULL DEFAULT 1,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    UNIQUE INDEX `accounts_cloud_id_name_key`(`cloud_id`, `name`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- AddForeignKey
ALTER TABLE `cloud_regions` ADD CONSTRAINT `cloud_regions_cloud_id_fkey` FOREIGN KEY (`cloud_id`) REFERENCES `clouds`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `budget_code_grants` ADD CONSTRAINT `budget_code_grants_code_fkey` FOREIGN KEY (`code`) REFERENCES `budget_codes`(`code`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `accounts` ADD CONSTRAINT `accounts_cloud_id_fkey` FOREIGN KEY (`cloud_id`) REFERENCES `clouds`(`id`) ON DELETE RESTRICT ON UPDATE CASCADE;
