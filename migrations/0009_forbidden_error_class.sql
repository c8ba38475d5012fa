-- A job whose target address its outbound policy refuses ends dead with its own error class,
-- 'forbidden'. The constraint is added NOT VALID and then validated, so the check of existing
-- rows does not block writers.
ALTER TABLE jobs DROP CONSTRAINT jobs_last_error_class_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_last_error_class_check
    CHECK (last_error_class IN ('transient', 'permanent', 'timeout', 'poison', 'forbidden', 'cancelled')) NOT VALID;
ALTER TABLE jobs VALIDATE CONSTRAINT jobs_last_error_class_check;
