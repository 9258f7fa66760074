-- Who may take work from a queue (issue 23): its owner (the member who first posted a task to
-- it), the workers its owner (or an admin) granted it to, and admins. Before this any member
-- could claim from any queue, then complete a stranger's task with a forged result.
-- Relational, like roles: who may act is configuration, not history.
CREATE TABLE queues (
    name       text PRIMARY KEY,
    owner      uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE queue_workers (
    queue      text NOT NULL REFERENCES queues (name),
    user_id    uuid NOT NULL REFERENCES users (id),
    granted_by uuid NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, user_id)
);

-- A store from before: each queue is its first task's creator's, and whoever has worked a
-- task of it keeps working it.
INSERT INTO queues (name, owner, created_at)
SELECT DISTINCT ON (t.queue) t.queue, t.creator, t.created_at
  FROM tasks t JOIN users u ON u.id = t.creator
 ORDER BY t.queue, t.created_at;

INSERT INTO queue_workers (queue, user_id, granted_by)
SELECT DISTINCT t.queue, t.worker, q.owner
  FROM tasks t JOIN queues q ON q.name = t.queue JOIN users u ON u.id = t.worker
 WHERE t.worker IS NOT NULL AND t.worker <> q.owner;
