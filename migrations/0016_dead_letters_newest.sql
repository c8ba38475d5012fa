-- The open dead letters of every kind, newest first (the api's and the dashboard's listing
-- without a kind; it sorted every open dead letter before). Written once per dead job and once
-- per requeue: off the path of jobs that succeed.
CREATE INDEX dead_letters_open_newest ON dead_letters (dead_at DESC, id DESC) WHERE requeued_at IS NULL;
