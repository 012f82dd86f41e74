//! INTERACTION_CREATE payloads for tests to dispatch.

use serde_json::{Value, json};

use super::{
    APP_ID, DEFAULT_ATTACHMENT_SIZE_LIMIT, DEFAULT_CHANNEL_ID, DEFAULT_GUILD_ID, DEFAULT_PERMISSIONS, DEFAULT_USER_ID,
    DEFAULT_USER_NAME, id_of, known_channel, plain_user_json, snowflake,
};

/// Builds INTERACTION_CREATE payloads (`d`) shaped like Discord's (reference §4.3), accepted by
/// serenity 0.12.
#[derive(Clone, Debug)]
pub struct InteractionBuilder {
    id: u64,
    token: String,
    name: String,
    command_id: u64,
    guild_id: u64,
    channel_id: u64,
    user_id: u64,
    user_name: String,
    permissions: u64,
    options: Vec<Value>,
    subcommand: Option<String>,
    users: serde_json::Map<String, Value>,
    members: serde_json::Map<String, Value>,
    channels: serde_json::Map<String, Value>,
    attachments: serde_json::Map<String, Value>,
    attachment_size_limit: u64,
    /// Reached through a user installation only: the server never added the bot.
    user_installed: bool,
    /// Role ids of the invoking member (`member.roles`).
    member_roles: Vec<u64>,
    roles: serde_json::Map<String, Value>,
    /// Set for a button press or a modal submit, which carry no command.
    component: Option<Component>,
}

/// What a component interaction carries instead of a command.
#[derive(Clone, Debug)]
enum Component {
    /// A button press (type 3): the button's `custom_id` and the message it is on.
    Press { custom_id: String, message: Value },
    /// A modal submit (type 5): the modal's `custom_id`, each text input's `(custom_id, value)`,
    /// and the message of the button that opened the modal (Null: opened by a command).
    ModalSubmit { custom_id: String, inputs: Vec<(String, String)>, message: Value },
}

impl InteractionBuilder {
    /// A CHAT_INPUT (type 2 interaction, command type 1) with a fresh id and token.
    pub fn command(name: &str) -> Self {
        InteractionBuilder {
            id: snowflake(),
            token: format!("tok-{}", uuid::Uuid::new_v4()),
            name: name.to_string(),
            command_id: snowflake(),
            guild_id: DEFAULT_GUILD_ID,
            channel_id: DEFAULT_CHANNEL_ID,
            user_id: DEFAULT_USER_ID,
            user_name: DEFAULT_USER_NAME.to_string(),
            permissions: DEFAULT_PERMISSIONS,
            options: Vec::new(),
            subcommand: None,
            users: serde_json::Map::new(),
            members: serde_json::Map::new(),
            channels: serde_json::Map::new(),
            user_installed: false,
            member_roles: Vec::new(),
            roles: serde_json::Map::new(),
            attachments: serde_json::Map::new(),
            attachment_size_limit: DEFAULT_ATTACHMENT_SIZE_LIMIT,
            component: None,
        }
    }

    /// A press (type 3 interaction, component type 2) of the button `custom_id` on `message` (a
    /// message as the stand-in stored it), with a fresh id and token. Like Discord, the stand-in
    /// puts the message as it holds it now into the dispatched press, attachment URLs freshly
    /// signed; a message it does not know is sent as given.
    pub fn button_press(message: &Value, custom_id: &str) -> Self {
        let mut press = Self::on_message(message);
        press.component = Some(Component::Press { custom_id: custom_id.to_owned(), message: message.clone() });
        press
    }

    /// The submit (type 5 interaction) of the modal `custom_id` that a button on `message` opened,
    /// with a fresh id and token: `data.components` holds one action row per input, each with the
    /// text input `{type 4, custom_id, value}` of `inputs` (`(custom_id, value)`). `message` is
    /// dispatched like a press's (as the stand-in holds it now, URLs freshly signed); `Value::Null`
    /// makes the submit of a modal a command opened, which has no message.
    pub fn modal_submit(message: &Value, custom_id: &str, inputs: &[(&str, &str)]) -> Self {
        let mut submit = Self::on_message(message);
        let inputs = inputs.iter().map(|(id, value)| ((*id).to_owned(), (*value).to_owned())).collect();
        submit.component =
            Some(Component::ModalSubmit { custom_id: custom_id.to_owned(), inputs, message: message.clone() });
        submit
    }

    /// An interaction in the channel and guild of `message` (the defaults if it names none).
    fn on_message(message: &Value) -> Self {
        let mut interaction = Self::command("");
        interaction.channel_id = id_of(&message["channel_id"]).unwrap_or(DEFAULT_CHANNEL_ID);
        interaction.guild_id = id_of(&message["guild_id"]).unwrap_or(DEFAULT_GUILD_ID);
        interaction
    }

    pub fn guild(mut self, id: u64) -> Self {
        self.guild_id = id;
        self
    }

    /// The channel the command is used in.
    pub fn channel(mut self, id: u64) -> Self {
        self.channel_id = id;
        self
    }

    pub fn user(mut self, id: u64, name: &str) -> Self {
        self.user_id = id;
        self.user_name = name.to_string();
        self
    }

    pub fn member_permissions(mut self, perms: u64) -> Self {
        self.permissions = perms;
        self
    }

    pub fn string(mut self, name: &str, v: &str) -> Self {
        self.options.push(json!({"name": name, "type": 3, "value": v}));
        self
    }

    pub fn integer(mut self, name: &str, v: i64) -> Self {
        self.options.push(json!({"name": name, "type": 4, "value": v}));
        self
    }

    pub fn number(mut self, name: &str, v: f64) -> Self {
        self.options.push(json!({"name": name, "type": 10, "value": v}));
        self
    }

    pub fn boolean(mut self, name: &str, v: bool) -> Self {
        self.options.push(json!({"name": name, "type": 5, "value": v}));
        self
    }

    /// The roles the invoking member holds, as Discord lists them in `member.roles`.
    pub fn member_roles(mut self, roles: &[u64]) -> Self {
        self.member_roles = roles.to_vec();
        self
    }

    /// A ROLE option (type 8): the value is the role id, the role itself is in
    /// `data.resolved.roles`.
    pub fn role_option(mut self, name: &str, role_id: u64) -> Self {
        self.options.push(json!({"name": name, "type": 8, "value": role_id.to_string()}));
        self.roles.insert(
            role_id.to_string(),
            json!({
                "id": role_id.to_string(), "name": format!("role{}", role_id % 10000), "color": 0,
                "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
                "hoist": false, "icon": null, "unicode_emoji": null, "position": 1, "permissions": "0",
                "managed": false, "mentionable": false, "flags": 0
            }),
        );
        self
    }

    /// A CHANNEL option (type 7): its value is the channel id, and the channel arrives in
    /// `data.resolved.channels` as the partial channel Discord sends (id, name, type and the
    /// member's permissions there; no guild). Channels the stand-in does not know are named
    /// `channel-<id>`.
    pub fn channel_option(mut self, name: &str, channel_id: u64) -> Self {
        self.options.push(json!({"name": name, "type": 7, "value": channel_id.to_string()}));
        let channel_name =
            known_channel(channel_id).map_or_else(|| format!("channel-{channel_id}"), |(_, name)| name.to_owned());
        self.channels
            .insert(channel_id.to_string(), json!({"id": channel_id.to_string(), "name": channel_name, "type": 0}));
        self
    }

    pub fn user_option(mut self, name: &str, user_id: u64) -> Self {
        let uname = format!("user{}", user_id % 10000);
        self.options.push(json!({"name": name, "type": 6, "value": user_id.to_string()}));
        self.users.insert(user_id.to_string(), plain_user_json(user_id, &uname));
        self.members.insert(
            user_id.to_string(),
            json!({
                "roles": [], "nick": null, "avatar": null, "premium_since": null,
                "joined_at": "2025-03-01T12:00:00.000000+00:00", "pending": false, "flags": 0,
                "permissions": DEFAULT_PERMISSIONS.to_string(), "communication_disabled_until": null
            }),
        );
        self
    }

    /// A USER option (type 6) naming a member of the server who holds `roles`: Discord resolves
    /// the member with their roles in `data.resolved.members`.
    pub fn member_option(self, name: &str, user_id: u64, roles: &[u64]) -> Self {
        let mut with_member = self.user_option(name, user_id);
        let roles: Vec<String> = roles.iter().map(u64::to_string).collect();
        if let Some(member) = with_member.members.get_mut(&user_id.to_string()) {
            member["roles"] = json!(roles);
        }
        with_member
    }

    /// An ATTACHMENT option (type 11); its value is a generated attachment id that is filled
    /// into `data.resolved.attachments` with `url`/`proxy_url` (passed through untouched).
    pub fn attachment(mut self, name: &str, filename: &str, content_type: Option<&str>, size: u64, url: &str) -> Self {
        let id = snowflake();
        self.options.push(json!({"name": name, "type": 11, "value": id.to_string()}));
        let proxy_url = url.replacen("https://cdn.discordapp.com/", "https://media.discordapp.net/", 1);
        let mut att = json!({
            "id": id.to_string(),
            "filename": filename,
            "size": size,
            "url": url,
            "proxy_url": proxy_url,
            "ephemeral": true,
        });
        if let Some(ct) = content_type {
            att["content_type"] = json!(ct);
            if ct.starts_with("image/") {
                att["width"] = json!(1024);
                att["height"] = json!(1024);
            }
        }
        self.attachments.insert(id.to_string(), att);
        self
    }

    /// Wraps all options (given before and after this call) into a type-1 sub-command option.
    pub fn subcommand(mut self, name: &str) -> Self {
        self.subcommand = Some(name.to_string());
        self
    }

    pub fn attachment_size_limit(mut self, bytes: u64) -> Self {
        self.attachment_size_limit = bytes;
        self
    }

    /// As Discord sends a command used through the user's own installation of the app, in a
    /// server that never added it.
    pub fn user_installed(mut self) -> Self {
        self.user_installed = true;
        self
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn token(&self) -> String {
        self.token.clone()
    }

    pub fn build(&self) -> Value {
        let options = match &self.subcommand {
            Some(sub) => json!([{"name": sub, "type": 1, "options": self.options}]),
            None => json!(self.options),
        };
        let mut resolved = serde_json::Map::new();
        if !self.users.is_empty() {
            resolved.insert("users".into(), Value::Object(self.users.clone()));
        }
        if !self.members.is_empty() {
            resolved.insert("members".into(), Value::Object(self.members.clone()));
        }
        if !self.channels.is_empty() {
            let mut channels = self.channels.clone();
            for channel in channels.values_mut() {
                channel["permissions"] = json!(self.permissions.to_string());
            }
            resolved.insert("channels".into(), Value::Object(channels));
        }
        if !self.attachments.is_empty() {
            resolved.insert("attachments".into(), Value::Object(self.attachments.clone()));
        }
        if !self.roles.is_empty() {
            resolved.insert("roles".into(), Value::Object(self.roles.clone()));
        }
        let mut data = json!({
            "id": self.command_id.to_string(),
            "name": self.name,
            "type": 1,
            "options": options,
        });
        if !resolved.is_empty() {
            data["resolved"] = Value::Object(resolved);
        }
        let user = plain_user_json(self.user_id, &self.user_name);
        let mut d = json!({
            "id": self.id.to_string(),
            "application_id": APP_ID.to_string(),
            "type": 2,
            "version": 1,
            "token": self.token,
            "channel_id": self.channel_id.to_string(),
            "app_permissions": DEFAULT_PERMISSIONS.to_string(),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": self.attachment_size_limit,
            "data": data,
        });
        let gs = self.guild_id.to_string();
        d["data"]["guild_id"] = json!(gs);
        d["guild_id"] = json!(gs);
        d["guild"] = json!({"id": gs, "locale": "en-US", "features": []});
        d["guild_locale"] = json!("en-US");
        let channel_name = known_channel(self.channel_id).map_or("channel", |(_, name)| name);
        d["channel"] = json!({
            "id": self.channel_id.to_string(), "type": 0, "name": channel_name, "guild_id": gs,
            "nsfw": false, "flags": 0, "permissions": self.permissions.to_string(),
            "last_message_id": null, "rate_limit_per_user": 0, "position": 1,
            "parent_id": null, "topic": null
        });
        let member_roles: Vec<String> = self.member_roles.iter().map(u64::to_string).collect();
        d["member"] = json!({
            "user": user,
            "roles": member_roles, "nick": null, "avatar": null,
            "joined_at": "2025-03-01T12:00:00.000000+00:00", "premium_since": null,
            "deaf": false, "mute": false, "pending": false, "flags": 0,
            "permissions": self.permissions.to_string(),
            "communication_disabled_until": null
        });
        // A user installation names the user under "1"; without the server's own installation
        // there is no "0" (the app was never added to this server).
        d["authorizing_integration_owners"] =
            if self.user_installed { json!({"1": self.user_id.to_string()}) } else { json!({"0": gs}) };
        d["context"] = json!(0);
        match &self.component {
            None => {}
            Some(Component::Press { custom_id, message }) => {
                d["type"] = json!(3);
                d["data"] = json!({"custom_id": custom_id, "component_type": 2});
                d["message"] = message.clone();
            }
            Some(Component::ModalSubmit { custom_id, inputs, message }) => {
                let rows: Vec<Value> = inputs
                    .iter()
                    .map(|(id, value)| json!({"type": 1, "components": [{"type": 4, "custom_id": id, "value": value}]}))
                    .collect();
                d["type"] = json!(5);
                d["data"] = json!({"custom_id": custom_id, "components": rows});
                if !message.is_null() {
                    d["message"] = message.clone();
                }
            }
        }
        d
    }
}
