-- The defaults' aspect ratio and performance, as types of their own (like `job_origin`): the
-- database refuses anything else, and the bot reads them as `spec::AspectRatio` and
-- `spec::Performance` without parsing text. The CHECK constraints they replace allowed only these
-- values, so every stored value converts; one that does not (a constraint dropped by hand) becomes
-- NULL, no default, which is what the bot read it as before.
CREATE TYPE aspect_ratio AS ENUM ('9:16', '2:3', '3:4', '4:5', '5:6', '1:1', '6:5', '5:4', '4:3', '3:2', '16:9');
CREATE TYPE performance AS ENUM ('speed', 'balance', 'quality');

ALTER TABLE guild_settings DROP CONSTRAINT IF EXISTS guild_settings_aspect_ratio_check;
ALTER TABLE guild_settings DROP CONSTRAINT IF EXISTS guild_settings_performance_check;
ALTER TABLE guild_settings
    ALTER COLUMN aspect_ratio TYPE aspect_ratio USING (
        CASE WHEN aspect_ratio = ANY (enum_range(NULL::aspect_ratio)::text[]) THEN aspect_ratio::aspect_ratio END),
    ALTER COLUMN performance TYPE performance USING (
        CASE WHEN performance = ANY (enum_range(NULL::performance)::text[]) THEN performance::performance END);

ALTER TABLE user_prefs DROP CONSTRAINT IF EXISTS user_prefs_aspect_ratio_check;
ALTER TABLE user_prefs DROP CONSTRAINT IF EXISTS user_prefs_performance_check;
ALTER TABLE user_prefs
    ALTER COLUMN aspect_ratio TYPE aspect_ratio USING (
        CASE WHEN aspect_ratio = ANY (enum_range(NULL::aspect_ratio)::text[]) THEN aspect_ratio::aspect_ratio END),
    ALTER COLUMN performance TYPE performance USING (
        CASE WHEN performance = ANY (enum_range(NULL::performance)::text[]) THEN performance::performance END);
