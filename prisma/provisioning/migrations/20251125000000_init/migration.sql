-- CreateTable
CREATE TABLE `users` (
    `id` CHAR(26) NOT NULL,
    `email` VARCHAR(255) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `kind` ENUM('USER', 'SERVICE') NOT NULL DEFAULT 'USER',
    `status` ENUM('ACTIVE', 'DISABLED') NOT NULL DEFAULT 'ACTIVE',
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    UNIQUE INDEX `users_email_key`(`email`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `user_roles` (
    `user_id` CHAR(26) NOT NULL,
    `role` VARCHAR(64) NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`user_id`, `role`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `api_keys` (
    `id` CHAR(26) NOT NULL,
    `user_id` CHAR(26) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `prefix` VARCHAR(16) NOT NULL,
    `secret_hash` CHAR(64) NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `last_used_at` DATETIME(3) NULL,
    `revoked_at` DATETIME(3) NULL,
    `expires_at` DATETIME(3) NULL,

    UNIQUE INDEX `api_keys_secret_hash_key`(`secret_hash`),
    INDEX `api_keys_user_id_idx`(`user_id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `jobs` (
    `id` CHAR(26) NOT NULL,
    `kind` VARCHAR(64) NOT NULL,
    `state` ENUM('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED') NOT NULL DEFAULT 'QUEUED',
    `attempt` INTEGER NOT NULL DEFAULT 0,
    `max_attempts` INTEGER NOT NULL,
    `lease_owner` VARCHAR(128) NULL,
    `lease_expires_at` DATETIME(3) NULL,
    `progress_percent` INTEGER NOT NULL DEFAULT 0,
    `progress_message` VARCHAR(1024) NULL,
    `error_code` VARCHAR(64) NULL,
    `error_message` TEXT NULL,
    `error_details` JSON NULL,
    `result` JSON NULL,
    `payload` JSON NOT NULL,
    `requested_by` VARCHAR(64) NOT NULL,
    `resource_type` VARCHAR(64) NULL,
    `resource_id` VARCHAR(64) NULL,
    `idempotency_key` VARCHAR(128) NULL,
    `trace_id` CHAR(32) NOT NULL,
    `traceparent` VARCHAR(128) NULL,
    `cancel_requested` BOOLEAN NOT NULL DEFAULT false,
    `next_check_at` DATETIME(3) NULL,
    `checks` INTEGER NOT NULL DEFAULT 0,
    `deadline_at` DATETIME(3) NULL,
    `published_at` DATETIME(3) NULL,
    `publish_count` INTEGER NOT NULL DEFAULT 0,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `started_at` DATETIME(3) NULL,
    `ended_at` DATETIME(3) NULL,

    INDEX `jobs_state_updated_at_idx`(`state`, `updated_at`),
    INDEX `jobs_kind_state_idx`(`kind`, `state`),
    INDEX `jobs_resource_type_resource_id_idx`(`resource_type`, `resource_id`),
    INDEX `jobs_requested_by_created_at_idx`(`requested_by`, `created_at`),
    INDEX `jobs_next_check_at_idx`(`next_check_at`),
    INDEX `jobs_lease_expires_at_idx`(`lease_expires_at`),
    INDEX `jobs_state_published_at_idx`(`state`, `published_at`),
    UNIQUE INDEX `jobs_requested_by_idempotency_key_key`(`requested_by`, `idempotency_key`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `job_events` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `job_id` CHAR(26) NOT NULL,
    `sequence` INTEGER NOT NULL,
    `type` VARCHAR(64) NOT NULL,
    `from_state` ENUM('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED') NULL,
    `to_state` ENUM('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED') NOT NULL,
    `attempt` INTEGER NOT NULL,
    `actor` VARCHAR(128) NOT NULL,
    `message` TEXT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    UNIQUE INDEX `job_events_job_id_sequence_key`(`job_id`, `sequence`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `outbox_entries` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `job_id` CHAR(26) NOT NULL,
    `attempt` INTEGER NOT NULL,
    `msg_id` VARCHAR(191) NOT NULL,
    `subject` VARCHAR(255) NOT NULL,
    `headers` JSON NOT NULL,
    `payload` JSON NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `published_at` DATETIME(3) NULL,
    `publish_attempts` INTEGER NOT NULL DEFAULT 0,

    INDEX `outbox_entries_published_at_idx`(`published_at`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `dead_letters` (
    `id` CHAR(26) NOT NULL,
    `job_id` CHAR(26) NOT NULL,
    `attempt` INTEGER NOT NULL,
    `kind` VARCHAR(64) NOT NULL,
    `payload` JSON NOT NULL,
    `last_error` TEXT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `replayed_at` DATETIME(3) NULL,

    INDEX `dead_letters_job_id_idx`(`job_id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `diagnostic_effects` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `job_id` CHAR(26) NOT NULL,
    `attempt` INTEGER NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `diagnostic_effects_job_id_idx`(`job_id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- AddForeignKey
ALTER TABLE `user_roles` ADD CONSTRAINT `user_roles_user_id_fkey` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `api_keys` ADD CONSTRAINT `api_keys_user_id_fkey` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `job_events` ADD CONSTRAINT `job_events_job_id_fkey` FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;
