-- A server's own rules for /imagine, set by its admins with /settings.

-- Defaults used when a member gives neither the option nor the typed flag (NULL: none, the bot's
-- own default applies). The row is also what every /settings change locks, so changes to one
-- guild's settings happen one after another.
CREATE TABLE guild_settings (
    guild_id         bigint PRIMARY KEY,
    aspect_ratio     text CHECK (aspect_ratio IN ('9:16', '2:3', '3:4', '4:5', '5:6', '1:1', '6:5', '5:4', '4:3', '3:2', '16:9')),
    performance      text CHECK (performance IN ('speed', 'balance', 'quality')),
    stylization      integer CHECK (stylization BETWEEN 0 AND 1000),
    chaos            integer CHECK (chaos BETWEEN 0 AND 100),
    weirdness        integer CHECK (weirdness BETWEEN 0 AND 3000),
    -- Stored as the provider will receive it (already cleaned).
    negative_prompt  text CHECK (char_length(negative_prompt) BETWEEN 1 AND 500)
);

-- While a guild has any row here, /imagine works only in these channels (and their threads).
CREATE TABLE guild_allowed_channels (
    guild_id    bigint NOT NULL,
    channel_id  bigint NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);

-- Words a guild does not allow in prompts, in their folded form: lower case, no accents,
-- full-width letters made plain, whole words joined by single spaces.
CREATE TABLE guild_blocked_words (
    guild_id  bigint NOT NULL,
    word      text NOT NULL CHECK (char_length(word) BETWEEN 1 AND 100),
    PRIMARY KEY (guild_id, word)
);

-- Every change an admin makes to a setting: who, what, old and new value, when. A channel or a
-- word that is added has no old value; one that is removed has no new value.
CREATE TYPE setting_name AS ENUM (
    'aspect_ratio', 'performance', 'stylization', 'chaos', 'weirdness', 'negative_prompt',
    'allowed_channel', 'blocked_word'
);
CREATE TABLE settings_changes (
    id          bigserial PRIMARY KEY,
    guild_id    bigint NOT NULL,
    changed_by  bigint NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    setting     setting_name NOT NULL,
    old_value   text,
    new_value   text
);
CREATE INDEX settings_changes_guild ON settings_changes (guild_id, changed_at DESC, id DESC);
