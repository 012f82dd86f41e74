-- While a guild has any row here, only members holding one of these roles (or Manage Server) may
-- start image jobs: /imagine, V, Reroll and Remix alike.
CREATE TABLE guild_job_roles (
    guild_id  bigint NOT NULL,
    role_id   bigint NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);

-- Adding or removing such a role is audited like the other settings.
ALTER TYPE setting_name ADD VALUE 'job_role';
