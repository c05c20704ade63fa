-- Budget usage summed every server's hourly accruals of the month each accrual interval (servers × hours rows by the
-- month's end); it now sums final hours per budget code from this table and reads cost_accruals only for the hours
-- still open. The first pass after the upgrade sums the month's hours already final (its progress, `budget.hours`,
-- starts absent), so usage is unchanged by it.
-- CreateTable
CREATE TABLE `budget_code_hours` (
    `period_start` DATETIME(3) NOT NULL,
    `budget_code` VARCHAR(64) NOT NULL,
    `amount_micros` BIGINT NOT NULL,
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`period_start`, `budget_code`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
