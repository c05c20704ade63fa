-- An outbox row now lives until JetStream has its message: the relay deletes it then, instead of stamping
-- published_at and deleting it a day later. The table is replaced by one holding only the rows not yet published
-- (however many published rows the old one kept, this copies only those), without published_at and its index.
-- A row an older relay inserts between the copy and the rename is not lost: its job stays QUEUED with no outbox row,
-- and the monitor's reconciler publishes such a job again (jobs.republishAfterMs).
CREATE TABLE `outbox_entries_next` LIKE `outbox_entries`;
ALTER TABLE `outbox_entries_next` DROP INDEX `outbox_entries_published_at_idx`, DROP COLUMN `published_at`;
INSERT INTO `outbox_entries_next` (`id`, `job_id`, `attempt`, `msg_id`, `subject`, `headers`, `payload`, `created_at`, `publish_attempts`)
  SELECT `id`, `job_id`, `attempt`, `msg_id`, `subject`, `headers`, `payload`, `created_at`, `publish_attempts` FROM `outbox_entries` WHERE `published_at` IS NULL;
RENAME TABLE `outbox_entries` TO `outbox_entries_published`, `outbox_entries_next` TO `outbox_entries`;
DROP TABLE `outbox_entries_published`;
