-- CreateTable
CREATE TABLE `agent_join_tokens` (
    `id` CHAR(26) NOT NULL,
    `server_id` CHAR(26) NOT NULL,
    `token_hash` CHAR(64) NOT NULL,
    `expires_at` DATETIME(3) NOT NULL,
    `used_at` DATETIME(3) NULL,
    `agent_id` CHAR(26) NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    UNIQUE INDEX `agent_join_tokens_token_hash_key`(`token_hash`),
    INDEX `agent_join_tokens_server_id_idx`(`server_id`),
    INDEX `agent_join_tokens_expires_at_idx`(`expires_at`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `agents` (
    `id` CHAR(26) NOT NULL,
    `server_id` CHAR(26) NOT NULL,
    `credential_hash` CHAR(64) NOT NULL,
    `version` VARCHAR(64) NOT NULL,
    `hostname` VARCHAR(255) NOT NULL,
    `address` VARCHAR(255) NOT NULL,
    `port` INTEGER NOT NULL,
    `state` ENUM('CONNECTED', 'UNREACHABLE', 'GONE') NOT NULL DEFAULT 'CONNECTED',
    `missed_pings` INTEGER NOT NULL DEFAULT 0,
    `last_seen_at` DATETIME(3) NULL,
    `next_ping_at` DATETIME(3) NOT NULL,
    `registered_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    UNIQUE INDEX `agents_server_id_key`(`server_id`),
    INDEX `agents_state_next_ping_at_idx`(`state`, `next_ping_at`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
