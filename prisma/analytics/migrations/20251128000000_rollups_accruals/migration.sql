-- CreateIndex
CREATE INDEX `server_metric_samples_time_idx` ON `server_metric_samples`(`time`);

-- CreateTable
CREATE TABLE `server_metric_rollups` (
    `server_id` VARCHAR(64) NOT NULL,
    `resolution` ENUM('HOUR', 'DAY') NOT NULL,
    `metric` VARCHAR(32) NOT NULL,
    `bucket_start` DATETIME(3) NOT NULL,
    `count` BIGINT NOT NULL,
    `sum` DOUBLE NOT NULL,
    `min` DOUBLE NOT NULL,
    `max` DOUBLE NOT NULL,
    `avg` DOUBLE NOT NULL,
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `server_metric_rollups_resolution_bucket_start_idx`(`resolution`, `bucket_start`),
    PRIMARY KEY (`server_id`, `resolution`, `metric`, `bucket_start`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `cost_accruals` (
    `server_id` VARCHAR(64) NOT NULL,
    `period_start` DATETIME(3) NOT NULL,
    `account_id` VARCHAR(64) NOT NULL,
    `budget_code` VARCHAR(64) NOT NULL,
    `hourly_price_micros` BIGINT NOT NULL,
    `accruing_ms` INTEGER NOT NULL,
    `amount_micros` BIGINT NOT NULL,
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `cost_accruals_budget_code_period_start_idx`(`budget_code`, `period_start`),
    INDEX `cost_accruals_account_id_period_start_idx`(`account_id`, `period_start`),
    INDEX `cost_accruals_period_start_idx`(`period_start`),
    PRIMARY KEY (`server_id`, `period_start`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `analytics_progress` (
    `task` VARCHAR(32) NOT NULL,
    `done_to` DATETIME(3) NOT NULL,
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`task`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
