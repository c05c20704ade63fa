-- CreateIndex
CREATE INDEX `jobs_ended_at_idx` ON `jobs`(`ended_at`);
