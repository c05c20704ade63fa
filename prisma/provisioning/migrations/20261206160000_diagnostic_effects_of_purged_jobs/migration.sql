-- The retention purge now deletes a diagnostic job's effect rows with the job. Those of jobs purged before it were
-- left behind, naming jobs that no longer exist: they go now.
DELETE `e` FROM `diagnostic_effects` `e` LEFT JOIN `jobs` `j` ON `j`.`id` = `e`.`job_id` WHERE `j`.`id` IS NULL;
