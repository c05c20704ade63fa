-- Retention of the provisioning database's two histories. The audit trail (provisioning.auditRetentionDays): a record
-- may be deleted once it is older than 7 days, never before, whoever sends the DELETE; updates stay refused. Account
-- events (provisioning.accountEventRetentionDays): an index on their time finds the oldest without reading the table.
DROP TRIGGER `audit_events_no_delete`;

CREATE TRIGGER `audit_events_no_delete` BEFORE DELETE ON `audit_events` FOR EACH ROW
BEGIN
  IF OLD.`time` >= UTC_TIMESTAMP(3) - INTERVAL 7 DAY THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_events is append-only: a record may be deleted only once it is older than 7 days';
  END IF;
END;

CREATE INDEX `account_events_created_at_idx` ON `account_events`(`created_at`);
