-- CreateTable
CREATE TABLE `credentials` (
    `id` CHAR(26) NOT NULL,
    `account_id` VARCHAR(64) NOT NULL,
    `type` VARCHAR(64) NOT NULL,
    `labels` JSON NOT NULL,
    `key_version` INTEGER NOT NULL,
    `wrapped_key` VARBINARY(128) NULL,
    `ciphertext` MEDIUMBLOB NULL,
    `created_by` VARCHAR(128) NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `deleted_at` DATETIME(3) NULL,

    INDEX `credentials_account_id_id_idx`(`account_id`, `id`),
    INDEX `credentials_key_version_idx`(`key_version`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `master_key_versions` (
    `version` INTEGER NOT NULL,
    `fingerprint` CHAR(64) NOT NULL,
    `is_current` BOOLEAN NOT NULL DEFAULT false,
    `encryptions` BIGINT NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `activated_at` DATETIME(3) NULL,
    `retired_at` DATETIME(3) NULL,

    PRIMARY KEY (`version`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `audit_events` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `time` DATETIME(3) NOT NULL,
    `action` VARCHAR(16) NOT NULL,
    `principal` VARCHAR(128) NOT NULL,
    `credential_id` VARCHAR(64) NULL,
    `account_id` VARCHAR(64) NULL,
    `job_id` VARCHAR(64) NULL,
    `trace_id` VARCHAR(32) NULL,
    `result` VARCHAR(32) NOT NULL,
    `detail` VARCHAR(255) NULL,

    INDEX `audit_events_credential_id_idx`(`credential_id`),
    INDEX `audit_events_time_idx`(`time`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- The audit trail is append-only: the database itself refuses to change or remove a row (Prisma cannot express
-- triggers; they live here only). Grant KM's database user INSERT and SELECT on audit_events, nothing more.
CREATE TRIGGER `audit_events_no_update` BEFORE UPDATE ON `audit_events` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_events is append-only';

CREATE TRIGGER `audit_events_no_delete` BEFORE DELETE ON `audit_events` FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_events is append-only';
