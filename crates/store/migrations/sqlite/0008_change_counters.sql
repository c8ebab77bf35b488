-- The change feed of the hot-path caches: one counter per kind of cached data, counted up after
-- every change of that data (by the server that made it, and by a restore). Every server process
-- on the database polls the counters and drops its cached principals and sessions when one
-- moved, so a change made on one replica (or by `gatehouse restore`) reaches the others within
-- one poll. Not archived: a restore counts both up instead. Kept in lockstep with the other
-- engine.
CREATE TABLE change_counters (
    feed TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO change_counters (feed, value) VALUES ('identity', 0), ('sessions', 0);
