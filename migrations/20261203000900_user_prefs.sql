-- A member's own preferences for /imagine (/prefs), the same in every guild: personal defaults
-- (NULL: none, the server's or the bot's default applies), a suffix added to every prompt, named
-- options that `--name` in a prompt expands to, and remix mode. Options live in this row as a
-- JSON object so that /imagine reads everything about the member in a one-row lookup inside its
-- reservation (no aggregate over a child table); the limit of 20 is checked under this row's lock.
-- The row is also what every /prefs change locks, so one member's changes happen one after another.
CREATE TABLE user_prefs (
    user_id          bigint PRIMARY KEY,
    aspect_ratio     text CHECK (aspect_ratio IN ('9:16', '2:3', '3:4', '4:5', '5:6', '1:1', '6:5', '5:4', '4:3', '3:2', '16:9')),
    performance      text CHECK (performance IN ('speed', 'balance', 'quality')),
    stylization      integer CHECK (stylization BETWEEN 0 AND 1000),
    chaos            integer CHECK (chaos BETWEEN 0 AND 100),
    weirdness        integer CHECK (weirdness BETWEEN 0 AND 3000),
    -- Stored as the provider will receive it (already cleaned), like the suffix.
    negative_prompt  text CHECK (char_length(negative_prompt) BETWEEN 1 AND 500),
    suffix           text CHECK (char_length(suffix) BETWEEN 1 AND 200),
    -- name (lower case, without `--`) -> value.
    options          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    remix            boolean NOT NULL DEFAULT false
);

-- Every change a member makes to their preferences: who, in which guild, what, old and new
-- value, when. A new option has no old value; a deleted one has no new value.
CREATE TABLE user_prefs_changes (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL,
    guild_id    bigint NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    what        text NOT NULL,
    old_value   text,
    new_value   text
);
CREATE INDEX user_prefs_changes_user ON user_prefs_changes (user_id, changed_at DESC, id DESC);
