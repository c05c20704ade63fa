-- AlterTable
ALTER TABLE `agents` ADD COLUMN `public_key` VARCHAR(1024) NULL,
    ADD COLUMN `cert_sha256` CHAR(64) NULL,
    ADD COLUMN `prev_cert_sha256` CHAR(64) NULL,
    ADD COLUMN `cert_not_after` DATETIME(3) NULL,
    ADD COLUMN `signed_at_ms` BIGINT NULL;
