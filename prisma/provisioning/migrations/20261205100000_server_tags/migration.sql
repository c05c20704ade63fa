-- Tags of a server: given at launch, or seen on the cloud. NULL for servers recorded before tags existed (read as none).
ALTER TABLE `servers` ADD COLUMN `tags` JSON NULL;
