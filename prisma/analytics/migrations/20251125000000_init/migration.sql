-- CreateTable
CREATE TABLE `server_metric_samples` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `server_id` VARCHAR(64) NOT NULL,
    `time` DATETIME(3) NOT NULL,
    `cpu_percent` DOUBLE NOT NULL,
    `memory_used_bytes` BIGINT NOT NULL,
    `memory_total_bytes` BIGINT NULL,
    `disk_used_bytes` BIGINT NULL,
    `disk_total_bytes` BIGINT NULL,
    `network_in_bytes` BIGINT NULL,
    `network_out_bytes` BIGINT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `server_metric_samples_server_id_time_idx`(`server_id`, `time`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
