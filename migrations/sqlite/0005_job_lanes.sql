-- Every job names its lane (a channel's events, a session's copilot or PSA work, an escalation's
-- notifications). A lane runs one job at a time, in order, across every worker and replica: a
-- worker takes no job of a lane while another job of that lane is running under a live lease.
-- Jobs queued before this migration have no lane ('') and are taken as before.
ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_running_lanes ON jobs(lane, locked_until) WHERE status = 'running';
