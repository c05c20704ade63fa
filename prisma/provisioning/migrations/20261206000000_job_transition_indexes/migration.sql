-- A job's transitions rewrite the entries of every index that holds its state. Two of them served only rare queries:
-- (state, published_at) — the reconciler's and the claimer's scans of QUEUED jobs read (state, created_at) as well —
-- and (held, state), which finds held children. `held` now clears when a held child ends (it is cancelled), so an
-- index on `held` alone finds the children still waiting, and an ordinary job's transitions never touch it.
UPDATE `jobs` SET `held` = false WHERE `held` = true AND `state` <> 'QUEUED';

-- DropIndex
DROP INDEX `jobs_state_published_at_idx` ON `jobs`;

-- DropIndex
DROP INDEX `jobs_held_state_idx` ON `jobs`;

-- CreateIndex
CREATE INDEX `jobs_held_idx` ON `jobs`(`held`);
