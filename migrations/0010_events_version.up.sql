-- Versions for the notification events' ordering guard (src/db/events.c): every statement
-- that changes a job's or a file's state and publishes it bumps its row's version in the
-- same UPDATE and returns it, so that two changes of one row have increasing versions in
-- commit order (the row lock orders them; a timestamp would not). Constant defaults: adding
-- them rewrites no table.
ALTER TABLE jobs ADD COLUMN version bigint NOT NULL DEFAULT 1;
ALTER TABLE files ADD COLUMN version bigint NOT NULL DEFAULT 1;
