-- Appends no longer NOTIFY: the relay is woken by a core NATS message from the process that
-- committed (`<prefix>.signal.appended`). A transaction that has sent NOTIFY commits under one
-- lock for the whole cluster, held through its fsync, so with the projections' NOTIFYs every
-- append and every projection batch committed one after another and never shared an fsync.
DROP TRIGGER events_notify ON events;
DROP FUNCTION events_notify();
