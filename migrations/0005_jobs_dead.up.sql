-- Dead jobs by queue and kind, for the /metrics gauge hydrant_jobs_dead: dead jobs are kept
-- (retention deletes only succeeded and cancelled ones), so without this every scrape would
-- read the whole table. Only dead rows are in it, so claims and completions of the other
-- states never touch it.
CREATE INDEX jobs_dead_idx ON jobs (queue, kind) WHERE state = 'dead';
