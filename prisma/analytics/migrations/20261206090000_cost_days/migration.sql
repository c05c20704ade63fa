-- ReportUsage summed every server's hourly accruals over its period (servers × 744 rows for a month). Final days are
-- now summed per server, budget code and account into cost_days, and a report reads whole days there and only the hours at its
-- edges from cost_accruals. Its rows are derived: the monitor fills them from the oldest accrual on (progress
-- `cost.days`, absent until then), and until it has, reports read cost_accruals as before.
-- CreateTable
CREATE TABLE `cost_days` (
    `day` DATETIME(3) NOT NULL,
    `server_id` VARCHAR(64) NOT NULL,
    `budget_code` VARCHAR(64) NOT NULL,
    `account_id` VARCHAR(64) NOT NULL,
    `amount_micros` BIGINT NOT NULL,
    `accruing_ms` INTEGER NOT NULL,
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `cost_days_account_id_day_idx`(`account_id`, `day`),
    INDEX `cost_days_budget_code_day_idx`(`budget_code`, `day`),
    PRIMARY KEY (`day`, `server_id`, `budget_code`, `account_id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
