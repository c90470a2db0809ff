"""Schema migrations, applied in order at start-up and tracked with `PRAGMA user_version`.

Append new steps; never edit one that has shipped, since databases in the field have run it.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: calls, received webhook events (dedupe), and the outbox of Slack deliveries.
    """
    CREATE TABLE calls (
        id                   INTEGER PRIMARY KEY,
        call_id              TEXT UNIQUE,          -- Retell's id; NULL when Retell refused
        direction            TEXT NOT NULL DEFAULT 'outbound',
        status               TEXT NOT NULL,
        stage                INTEGER NOT NULL DEFAULT 0,
        team_id              TEXT,
        channel_id           TEXT,
        user_id              TEXT,
        message_ts           TEXT,                 -- the call card in channel_id
        from_number          TEXT,
        to_number            TEXT,
        agent_id             TEXT,
        agent_name           TEXT,
        variables            TEXT,                 -- JSON object
        error                TEXT,
        created_at           REAL NOT NULL,        -- unix seconds
        updated_at           REAL NOT NULL,
        started_at           REAL,
        ended_at             REAL,
        duration_ms          INTEGER,
        disconnection_reason TEXT,
        sentiment            TEXT,
        successful           INTEGER,
        in_voicemail         INTEGER,
        cost_cents           REAL,
        summary              TEXT,
        transcript           TEXT,
        recording_url        TEXT,
        public_log_url       TEXT,
        raw_payload          TEXT
    );
    -- Covers every column /callstats reads, so stats never touch the wide rows.
    CREATE INDEX calls_stats ON calls (
        created_at, successful, sentiment, duration_ms, cost_cents, disconnection_reason, call_id
    ) WHERE call_id IS NOT NULL;
    CREATE INDEX calls_failed ON calls (created_at) WHERE call_id IS NULL;

    CREATE TABLE webhook_events (
        call_id     TEXT NOT NULL,
        event       TEXT NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (call_id, event)
    ) WITHOUT ROWID;

    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        call_id         TEXT NOT NULL,
        kind            TEXT NOT NULL,             -- 'card' | 'summary'
        created_at      REAL NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        done_at         REAL,
        last_error      TEXT
    );
    CREATE INDEX outbox_pending ON outbox (next_attempt_at, id) WHERE done_at IS NULL;
    """,
    # 2: what interactive Slack needs: notes, the timeline, polling, and claims that make
    # buttons and retried events safe to repeat.
    """
    ALTER TABLE calls ADD COLUMN note TEXT;
    ALTER TABLE calls ADD COLUMN thread_ts TEXT;          -- set when the card is a reply
    ALTER TABLE calls ADD COLUMN analyzed_at REAL;
    ALTER TABLE calls ADD COLUMN next_poll_at REAL;       -- NULL: no poll needed
    ALTER TABLE calls ADD COLUMN poll_attempts INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX calls_poll ON calls (next_poll_at) WHERE next_poll_at IS NOT NULL;
    CREATE INDEX calls_user ON calls (user_id, created_at);
    CREATE INDEX outbox_call ON outbox (call_id, kind);

    -- 'poll' when the event was inferred from get-call; the real webhook may still come.
    ALTER TABLE webhook_events ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';

    -- One row per thing that must happen once: a Slack event, a button press, a transcript.
    CREATE TABLE claims (
        key        TEXT PRIMARY KEY,
        claimed_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 3: reliable delivery: per-call order, posts whose answer was lost, and retries of
    # creates that may have happened.
    """
    ALTER TABLE outbox ADD COLUMN posting_since REAL;   -- a post went out, answer unknown
    CREATE INDEX outbox_call_pending ON outbox (call_id, id) WHERE done_at IS NULL;
    ALTER TABLE calls ADD COLUMN error_kind TEXT;       -- timeout | server_error | refused ...
    ALTER TABLE calls ADD COLUMN request_key TEXT;      -- the idempotency key Retell was sent
    """,
    # 4: guardrails: the do-not-call list, the audit log, and holds that make limits exact.
    """
    CREATE TABLE dnc (
        number   TEXT PRIMARY KEY,                  -- E.164
        reason   TEXT,
        added_by TEXT,                              -- a Slack user id, or NULL when a call did
        call_id  TEXT,                              -- the call that asked for it, if one did
        added_at REAL NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        at          REAL NOT NULL,
        user_id     TEXT,
        channel_id  TEXT,
        action      TEXT NOT NULL,                  -- call | hang_up | dnc_add | dnc_remove ...
        source      TEXT,                           -- the Slack surface that asked
        number      TEXT,                           -- masked, never the full number
        number_key  TEXT,                           -- keyed hash of the number, for lookups
        agent       TEXT,
        outcome     TEXT NOT NULL,                  -- placed | failed | refused | done
        reason      TEXT,
        call_id     TEXT
    );
    CREATE INDEX audit_user ON audit (user_id, id);
    CREATE INDEX audit_number ON audit (number_key, id);

    -- A call being placed holds a place under the limits until Retell answers.
    CREATE TABLE call_holds (
        id         INTEGER PRIMARY KEY,
        user_id    TEXT,
        created_at REAL NOT NULL
    );

    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('number_key_salt', lower(hex(randomblob(16))));
    """,
    # 5: hardening: two processes on one file (leases), the webhook inbox (verified raw
    # bodies, turned into calls by a batched consumer), admission that never scans history,
    # uncertain creates that keep their hold, and indexes for pruning what only grows.
    """
    ALTER TABLE outbox ADD COLUMN lease_owner TEXT;     -- the process delivering it now
    ALTER TABLE outbox ADD COLUMN lease_until REAL;     -- another may take it after this
    CREATE INDEX outbox_done ON outbox (done_at) WHERE done_at IS NOT NULL;

    -- One holder at a time for work that must run once (poller, retention, housekeeping).
    CREATE TABLE leases (
        name   TEXT PRIMARY KEY,
        owner  TEXT NOT NULL,
        until  REAL NOT NULL
    ) WITHOUT ROWID;

    -- Verified webhook bodies, committed before the 2xx; consumed in batches.
    CREATE TABLE webhook_inbox (
        id          INTEGER PRIMARY KEY,
        received_at REAL NOT NULL,
        call_id     TEXT NOT NULL,
        event       TEXT NOT NULL,
        merge       INTEGER NOT NULL DEFAULT 0,     -- 1: a poll saw the event first
        body        TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,     -- consumer failures, bounded
        last_error  TEXT
    );

    -- Only calls still on the line: the concurrent cap counts these, not all history.
    CREATE INDEX calls_live ON calls (created_at)
        WHERE call_id IS NOT NULL AND stage < 2 AND status IN ('registered', 'ongoing');

    -- A create whose outcome is unknown keeps its hold until it is resolved.
    ALTER TABLE call_holds ADD COLUMN request_key TEXT;
    ALTER TABLE call_holds ADD COLUMN expires_at REAL;
    CREATE INDEX call_holds_key ON call_holds (request_key);
    CREATE INDEX call_holds_user ON call_holds (user_id, created_at);

    CREATE INDEX claims_at ON claims (claimed_at);
    CREATE INDEX webhook_events_at ON webhook_events (received_at);
    """,
    """
    -- Calls to one number in a rolling 24 h (CALLBOT_NUMBER_CALLS_PER_DAY), placed or held.
    ALTER TABLE call_holds ADD COLUMN to_number TEXT;
    CREATE INDEX call_holds_number ON call_holds (to_number, created_at);
    CREATE INDEX calls_number ON calls (to_number, created_at) WHERE call_id IS NOT NULL;

    -- The agent's own extracted fields (call_analysis.custom_analysis_data), as JSON.
    ALTER TABLE calls ADD COLUMN extracted TEXT;
    """,
    """
    -- Calls to place later: fired once each, at their time, across restarts (claim first,
    -- the same idempotency key on every try).
    CREATE TABLE scheduled_calls (
        id            INTEGER PRIMARY KEY,
        team_id       TEXT,
        channel_id    TEXT NOT NULL,
        user_id       TEXT NOT NULL,
        thread_ts     TEXT,
        card_ts       TEXT,                 -- the card saying when; it becomes the call's
        number        TEXT NOT NULL,        -- E.164
        agent         TEXT,                 -- as asked: a name, an id, or none
        variables     TEXT,                 -- JSON
        note          TEXT,
        from_number   TEXT,
        due_at        REAL NOT NULL,
        status        TEXT NOT NULL,        -- scheduled | firing | done | cancelled | missed
        claimed_until REAL,
        outcome       TEXT,                 -- placed | refused | failed | missed | cancelled
        detail        TEXT,                 -- the refusal or failure code, who cancelled
        call_id       TEXT,
        request_key   TEXT NOT NULL,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    );
    CREATE INDEX scheduled_due ON scheduled_calls (due_at)
        WHERE status IN ('scheduled', 'firing');
    CREATE INDEX scheduled_user ON scheduled_calls (user_id, due_at)
        WHERE status = 'scheduled';
    """,
    """
    -- Campaigns: many calls from an uploaded list, paced; each row called at most once per
    -- try across restarts (claimed first, one idempotency key per row and try).
    CREATE TABLE campaigns (
        id            INTEGER PRIMARY KEY,
        team_id       TEXT,
        name          TEXT NOT NULL,
        owner         TEXT NOT NULL,
        channel_id    TEXT NOT NULL,
        card_ts       TEXT,
        status        TEXT NOT NULL,        -- draft | running | paused | cancelled | done
        agent         TEXT,
        from_number   TEXT,
        concurrency   INTEGER NOT NULL,
        attempts      INTEGER NOT NULL,     -- tries per row at most
        retry_spacing REAL NOT NULL,        -- seconds between tries
        start_at      REAL,
        columns       TEXT,                 -- JSON: the CSV's variable columns
        file_name     TEXT,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        started_at    REAL,
        finished_at   REAL,
        results_posted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX campaigns_active ON campaigns (status) WHERE status IN ('running', 'paused');
    CREATE INDEX campaigns_name ON campaigns (name);

    CREATE TABLE campaign_rows (
        id            INTEGER PRIMARY KEY,
        campaign_id   INTEGER NOT NULL REFERENCES campaigns (id),
        line          INTEGER NOT NULL,
        number        TEXT,                 -- E.164; NULL when the row had none usable
        status        TEXT NOT NULL,        -- waiting | placing | live | done | skipped | cancelled
        variables     TEXT,                 -- JSON
        agent         TEXT,
        attempts      INTEGER NOT NULL DEFAULT 0,
        next_at       REAL NOT NULL DEFAULT 0,
        claimed_until REAL,
        call_id       TEXT,
        outcome       TEXT,
        detail        TEXT
    );
    CREATE INDEX campaign_rows_due ON campaign_rows (campaign_id, next_at)
        WHERE status IN ('waiting', 'placing');
    CREATE INDEX campaign_rows_live ON campaign_rows (campaign_id) WHERE status = 'live';
    CREATE INDEX campaign_rows_campaign ON campaign_rows (campaign_id, line);

    -- A campaign's calls are tagged with it: stats, audit and results find them.
    ALTER TABLE calls ADD COLUMN campaign_id INTEGER;
    CREATE INDEX calls_campaign ON calls (campaign_id) WHERE campaign_id IS NOT NULL;
    """,
    """
    -- Retell's end-to-end latency of a call (the p50 over its turns, ms): /callstats reads it.
    ALTER TABLE calls ADD COLUMN latency_ms REAL;
    """,
    """
    -- Full-text search over each call's summary and transcript (/callsearch).
    --
    -- External content, not a copy and not contentless: a contentless table cannot give
    -- snippets, and a second copy of every transcript would double the file; so the index
    -- holds only postings and reads the text back from `calls` (for snippets) by rowid.
    -- The content is a view over `calls` that holds exactly the rows the triggers index
    -- (those with some text), so 'rebuild' agrees with the triggers, and strips the bytes
    -- 0x02 and 0x03, which search results use to mark matches, so no stored text can forge
    -- a mark.
    --
    -- trigram: substring matching, so Thai (no spaces between words) is found as well as
    -- English; case_sensitive 0 folds case. A term needs 3 characters at least (shorter
    -- ones are checked on the rows the longer ones found). remove_diacritics needs SQLite
    -- 3.45 and a file made with it would not open on an older library: plain trigram.
    --
    -- Summaries have an index of their own too (they are a small share of the text): with
    -- transcripts not posted (CALLBOT_POST_TRANSCRIPTS=false) a search reads summaries only,
    -- and a column filter on the shared index would read every transcript match to drop it.
    CREATE VIEW calls_fts_content AS
        SELECT id,
               replace(replace(summary, char(2), ''), char(3), '') AS summary,
               replace(replace(transcript, char(2), ''), char(3), '') AS transcript
        FROM calls WHERE summary IS NOT NULL OR transcript IS NOT NULL;
    CREATE VIRTUAL TABLE calls_fts USING fts5(
        summary, transcript,
        content = 'calls_fts_content', content_rowid = 'id',
        tokenize = 'trigram case_sensitive 0'
    );
    CREATE VIEW calls_fts_summary_content AS
        SELECT id, replace(replace(summary, char(2), ''), char(3), '') AS summary
        FROM calls WHERE summary IS NOT NULL;
    CREATE VIRTUAL TABLE calls_fts_summary USING fts5(
        summary,
        content = 'calls_fts_summary_content', content_rowid = 'id',
        tokenize = 'trigram case_sensitive 0'
    );

    -- Kept in step by triggers, so every write path (the upsert of webhooks and polls,
    -- imports, retention clearing transcripts, deletes) needs no code of its own. A delete
    -- from an external-content index must be given the text as it was indexed: the old
    -- row's, stripped the same way. An update that leaves the texts as they were (most
    -- webhooks: the upsert sets every column) touches nothing.
    CREATE TRIGGER calls_fts_insert AFTER INSERT ON calls
    WHEN new.summary IS NOT NULL OR new.transcript IS NOT NULL
    BEGIN
        INSERT INTO calls_fts (rowid, summary, transcript) VALUES (
            new.id,
            replace(replace(new.summary, char(2), ''), char(3), ''),
            replace(replace(new.transcript, char(2), ''), char(3), ''));
        INSERT INTO calls_fts_summary (rowid, summary)
            SELECT new.id, replace(replace(new.summary, char(2), ''), char(3), '')
            WHERE new.summary IS NOT NULL;
    END;
    CREATE TRIGGER calls_fts_delete AFTER DELETE ON calls
    WHEN old.summary IS NOT NULL OR old.transcript IS NOT NULL
    BEGIN
        INSERT INTO calls_fts (calls_fts, rowid, summary, transcript) VALUES (
            'delete', old.id,
            replace(replace(old.summary, char(2), ''), char(3), ''),
            replace(replace(old.transcript, char(2), ''), char(3), ''));
        INSERT INTO calls_fts_summary (calls_fts_summary, rowid, summary)
            SELECT 'delete', old.id, replace(replace(old.summary, char(2), ''), char(3), '')
            WHERE old.summary IS NOT NULL;
    END;
    CREATE TRIGGER calls_fts_update AFTER UPDATE OF id, summary, transcript ON calls
    WHEN old.id IS NOT new.id OR old.summary IS NOT new.summary
         OR old.transcript IS NOT new.transcript
    BEGIN
        INSERT INTO calls_fts (calls_fts, rowid, summary, transcript)
            SELECT 'delete', old.id,
                   replace(replace(old.summary, char(2), ''), char(3), ''),
                   replace(replace(old.transcript, char(2), ''), char(3), '')
            WHERE old.summary IS NOT NULL OR old.transcript IS NOT NULL;
        INSERT INTO calls_fts (rowid, summary, transcript)
            SELECT new.id,
                   replace(replace(new.summary, char(2), ''), char(3), ''),
                   replace(replace(new.transcript, char(2), ''), char(3), '')
            WHERE new.summary IS NOT NULL OR new.transcript IS NOT NULL;
    END;
    CREATE TRIGGER calls_fts_summary_update AFTER UPDATE OF id, summary ON calls
    WHEN old.id IS NOT new.id OR old.summary IS NOT new.summary
    BEGIN
        INSERT INTO calls_fts_summary (calls_fts_summary, rowid, summary)
            SELECT 'delete', old.id, replace(replace(old.summary, char(2), ''), char(3), '')
            WHERE old.summary IS NOT NULL;
        INSERT INTO calls_fts_summary (rowid, summary)
            SELECT new.id, replace(replace(new.summary, char(2), ''), char(3), '')
            WHERE new.summary IS NOT NULL;
    END;

    -- The calls there are already.
    INSERT INTO calls_fts (calls_fts) VALUES ('rebuild');
    INSERT INTO calls_fts_summary (calls_fts_summary) VALUES ('rebuild');

    -- Searching by a number finds the other party's calls: who was called (calls_number
    -- covers placed calls), who called in, and attempts Retell refused.
    CREATE INDEX calls_inbound_number ON calls (from_number, created_at)
        WHERE direction = 'inbound';
    CREATE INDEX calls_failed_number ON calls (to_number, created_at) WHERE call_id IS NULL;
    """,
    """
    -- /callstats' latency median reads these two columns only (not the wide rows).
    CREATE INDEX calls_latency ON calls (created_at, latency_ms)
        WHERE call_id IS NOT NULL AND latency_ms IS NOT NULL;
    """,
    """
    -- /callstats over a long history reads these per-day figures instead of every call:
    -- one row per quarter hour (`q`: whole seconds since 1970 / 900) per slice: all calls, and
    -- each agent, person, channel, campaign and direction. A day is summed only once it is
    -- over and no call of it changed since (stats_dirty); the rest of a period (today, its
    -- ragged ends, days still marked) is read from the calls, so answers are exact.
    CREATE TABLE stats_quarters (
        kind         TEXT NOT NULL,   -- all | agent | user | channel | campaign | direction
        key          TEXT NOT NULL,   -- the slice's value ('' for all; the agent's id)
        name         TEXT NOT NULL,   -- the agent's name ('' for the other kinds)
        q            INTEGER NOT NULL,
        calls        INTEGER NOT NULL,  -- placed by Retell (call_id set)
        refused      INTEGER NOT NULL,  -- attempts Retell did not place
        analyzed     INTEGER NOT NULL,
        successful   INTEGER NOT NULL,
        positive     INTEGER NOT NULL,
        neutral      INTEGER NOT NULL,
        negative     INTEGER NOT NULL,
        connected    INTEGER NOT NULL,
        talk_ms      REAL NOT NULL,     -- summed over connected calls
        cost         REAL NOT NULL,
        latencies    INTEGER NOT NULL,  -- calls with a latency
        o_successful INTEGER NOT NULL,  -- each call's one outcome, for the chart
        o_failed     INTEGER NOT NULL,
        o_no_answer  INTEGER NOT NULL,
        o_other      INTEGER NOT NULL,
        PRIMARY KEY (kind, key, name, q)
    ) WITHOUT ROWID;
    CREATE INDEX stats_quarters_q ON stats_quarters (q);
    -- Every slice summed so far (a few dozen rows): which agents a name or id means, which
    -- people a breakdown has, without reading the sums to find out.
    CREATE TABLE stats_slices (
        kind TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,
        PRIMARY KEY (kind, key, name)
    ) WITHOUT ROWID;
    -- How calls ended, per slice and day.
    CREATE TABLE stats_reasons (
        kind TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, day INTEGER NOT NULL,
        reason TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (kind, key, name, day, reason)
    ) WITHOUT ROWID;
    CREATE INDEX stats_reasons_day ON stats_reasons (day);
    -- How many calls lasted each whole second (measure 'd', connected calls) and had each
    -- 10 ms of latency ('l'), per slice and day: where a median falls. Its exact value is
    -- then read from the calls of the period in that one bucket (calls_duration,
    -- calls_latency_value: by bucket, then time).
    CREATE TABLE stats_values (
        kind TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, measure TEXT NOT NULL,
        day INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (kind, key, name, measure, day, bucket)
    ) WITHOUT ROWID;
    CREATE INDEX stats_values_day ON stats_values (day);
    CREATE INDEX calls_duration ON calls (CAST(duration_ms AS INTEGER) / 1000, created_at)
        WHERE call_id IS NOT NULL AND duration_ms > 0;
    CREATE INDEX calls_latency_value ON calls (max(CAST(latency_ms AS INTEGER), 0) / 10,
                                               created_at)
        WHERE call_id IS NOT NULL AND latency_ms IS NOT NULL;

    -- UTC days whose figures must be summed again: any write to a call that changes what
    -- /callstats reads marks its day (and its old day). `version` tells a rebuild that ran
    -- while calls kept changing that it is not done.
    CREATE TABLE stats_dirty (day INTEGER PRIMARY KEY, version INTEGER NOT NULL);
    CREATE TRIGGER stats_dirty_insert AFTER INSERT ON calls BEGIN
        INSERT INTO stats_dirty (day, version) VALUES (CAST(new.created_at AS INTEGER) / 86400, 1)
            ON CONFLICT (day) DO UPDATE SET version = version + 1;
    END;
    CREATE TRIGGER stats_dirty_delete AFTER DELETE ON calls BEGIN
        INSERT INTO stats_dirty (day, version) VALUES (CAST(old.created_at AS INTEGER) / 86400, 1)
            ON CONFLICT (day) DO UPDATE SET version = version + 1;
    END;
    CREATE TRIGGER stats_dirty_update AFTER UPDATE OF created_at, call_id, agent_id,
        agent_name, user_id, channel_id, campaign_id, direction, status, successful,
        sentiment, duration_ms, cost_cents, latency_ms, disconnection_reason ON calls
    WHEN (old.created_at, old.call_id, old.agent_id, old.agent_name, old.user_id,
          old.channel_id, old.campaign_id, old.direction, old.status, old.successful,
          old.sentiment, old.duration_ms, old.cost_cents, old.latency_ms,
          old.disconnection_reason)
      IS NOT (new.created_at, new.call_id, new.agent_id, new.agent_name, new.user_id,
          new.channel_id, new.campaign_id, new.direction, new.status, new.successful,
          new.sentiment, new.duration_ms, new.cost_cents, new.latency_ms,
          new.disconnection_reason)
    BEGIN
        INSERT INTO stats_dirty (day, version) VALUES (CAST(old.created_at AS INTEGER) / 86400, 1)
            ON CONFLICT (day) DO UPDATE SET version = version + 1;
        INSERT INTO stats_dirty (day, version) VALUES (CAST(new.created_at AS INTEGER) / 86400, 1)
            ON CONFLICT (day) DO UPDATE SET version = version + 1;
    END;
    -- The calls there are already: summed in the background after the upgrade.
    INSERT INTO stats_dirty (day, version)
        SELECT DISTINCT CAST(created_at AS INTEGER) / 86400, 1 FROM calls;
    """,
    """
    -- Slack's pace per channel, shared by every process on the file: the time the next
    -- write to the channel may go (unix seconds).
    CREATE TABLE channel_pace (
        channel TEXT PRIMARY KEY,
        next_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    """
    -- Slack's OAuth install flow (SLACK_CLIENT_ID...): each workspace's latest installation
    -- (slack_sdk's Installation as JSON, its tokens in it), deleted on uninstall, and the
    -- flow's one-time states, kept as keyed hashes until they expire.
    CREATE TABLE slack_installs (
        enterprise_id TEXT NOT NULL,
        team_id TEXT NOT NULL,
        data TEXT NOT NULL,
        installed_at REAL NOT NULL,
        PRIMARY KEY (enterprise_id, team_id)
    ) WITHOUT ROWID;
    CREATE TABLE oauth_states (
        state_key TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    -- A workspace's questions (/callstats, /callsearch, exports) read its calls only.
    CREATE INDEX calls_team ON calls (team_id, created_at);
    """,
    """
    -- Several workspaces: each one's do-not-call list and audit log apart. A number may be
    -- on several workspaces' lists; entries kept before this ("") count for every one.
    CREATE TABLE dnc_by_team (
        team_id  TEXT NOT NULL DEFAULT '',
        number   TEXT NOT NULL,
        reason   TEXT,
        added_by TEXT,
        call_id  TEXT,
        added_at REAL NOT NULL,
        PRIMARY KEY (team_id, number)
    ) WITHOUT ROWID;
    INSERT INTO dnc_by_team (team_id, number, reason, added_by, call_id, added_at)
        SELECT '', number, reason, added_by, call_id, added_at FROM dnc;
    DROP TABLE dnc;
    ALTER TABLE dnc_by_team RENAME TO dnc;
    CREATE INDEX dnc_number ON dnc (number);
    ALTER TABLE audit ADD COLUMN team_id TEXT;
    CREATE INDEX audit_team ON audit (team_id, id);
    """,
]
