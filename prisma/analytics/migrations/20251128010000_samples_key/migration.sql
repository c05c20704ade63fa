-- A sample is keyed by its server and time: a repeated ping rewrites it instead of adding a copy, and the rows sit in
-- (server, time) order without a second index for that order.
-- AlterTable
ALTER TABLE `server_metric_samples` DROP PRIMARY KEY,
    DROP COLUMN `id`,
    ADD PRIMARY KEY (`server_id`, `time`);

-- DropIndex
DROP INDEX `server_metric_samples_server_id_time_idx` ON `server_metric_samples`;
