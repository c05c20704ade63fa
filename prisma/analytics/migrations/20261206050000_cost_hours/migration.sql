-- The fleet summary's month to date summed every server's hourly accruals of the month on each call (servers × hours
-- rows by the month's end). Final hours are now summed per account and budget code, so budget_code_hours becomes
-- cost_hours with the account in its key and an index the summary's account filter reads alone. Its rows are derived:
-- the first pass after the upgrade sums the month's final hours again (progress `cost.hours`, absent until then).
-- DropTable
DROP TABLE `budget_code_hours`;

-- CreateTable
CREATE TABLE `cost_hours` (
    `period_start` DATETIME(3) NOT NULL,
    `account_id` VARCHAR(64) NOT NULL,
    `budget_code` VARCHAR(64) NOT NULL,
    `amount_micros` BIGINT NOT NULL,
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `cost_hours_account_id_period_start_amount_micros_idx`(`account_id`, `period_start`, `amount_micros`),
    PRIMARY KEY (`period_start`, `account_id`, `budget_code`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- The old roll-up's progress: nothing reads it any more.
DELETE FROM `analytics_progress` WHERE `task` = 'budget.hours';
