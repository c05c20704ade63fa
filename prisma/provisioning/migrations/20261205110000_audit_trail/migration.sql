-- The audit trail of who changed what (users, groups, roles, API keys, clouds, accounts, budget codes, firewalls and
-- the other cloud resources): one row per change, written in the change's own transaction.
CREATE TABLE `audit_events` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `time` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `principal` VARCHAR(128) NOT NULL,
    `trace_id` VARCHAR(32) NULL,
    `action` VARCHAR(64) NOT NULL,
    `object_type` VARCHAR(32) NOT NULL,
    `object_id` VARCHAR(128) NOT NULL,
    `diff` TEXT NULL,

    INDEX `audit_events_object_type_object_id_id_idx`(`object_type`, `object_id`, `id`),
    INDEX `audit_events_principal_id_idx`(`principal`, `id`),
    INDEX `audit_events_time_idx`(`time`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- Append-only: the database itself refuses to change or remove a row (Prisma cannot express triggers; they live here
-- only). Nothing purges it: the jobs retention leaves it alone. Grant the dispatcher's database user no more than
-- INSERT and SELECT on it where grants are per table.
CREATE TRIGGER `audit_events_no_update` BEFORE UPDATE ON `audit_events` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_events is append-only';

CREATE TRIGGER `audit_events_no_delete` BEFORE DELETE ON `audit_events` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_events is append-only';
