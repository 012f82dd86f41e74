use chrono::Utc;

use super::*;
use crate::{
    db::DiscordId,
    settings::{BlockedWords, blocked_form},
};

#[test]
fn the_overview_always_fits_in_one_message() {
    let words: Vec<String> =
        (0..200).map(|i| blocked_form(&format!("word{i:03} {}", "x".repeat(80))).unwrap()).collect();
    let settings = GuildSettings {
        defaults: GuildDefaults {
            aspect_ratio: AspectRatio::parse_exact("16:9"),
            negative_prompt: Some("n".repeat(500)),
            ..Default::default()
        },
        allowed_channels: (0..25).map(|i| 1180000000000000000 + i).collect(),
        job_roles: (0..25).map(|i| 1180000000000000500 + i).collect(),
        blocked_words: BlockedWords::new(words),
    };
    let change = RecordedChange {
        changed_by: DiscordId::new(1180000000000000300),
        changed_at: Utc::now(),
        setting: Setting::NegativePrompt,
        old_value: Some("o".repeat(500)),
        new_value: None,
    };
    let log = LogSettings { log_channel: Some(1180000000000000200), notify: false };
    let text = overview(&settings, log, &vec![change; 10]);
    assert!(text.chars().count() <= MAX_CONTENT, "{}", text.chars().count());
    assert!(text.contains("Aspect ratio: **16:9** · Performance: not set (balance)"), "{text}");
    assert!(text.contains("**Blocked words** (200): `word000"), "{text}");
    assert!(text.contains("**Roles:** Only members with <@&1180000000000000500>, "), "{text}");
    assert!(text.contains(" more\n"), "{text}");
    assert!(text.contains(" more (and their threads)") && text.contains(" more (and admins)"), "{text}");
    assert!(text.contains("**Recent changes**\n<t:"), "{text}");
    assert!(
        text.contains("**Log channel:** <#1180000000000000200>\n**Ping when a long job is done:** off\n"),
        "{text}"
    );
}

#[test]
fn changes_read_as_sentences() {
    let at = Utc::now();
    let recorded = |setting, old: Option<&str>, new: Option<&str>| {
        describe_recorded(&RecordedChange {
            changed_by: DiscordId::new(7),
            changed_at: at,
            setting,
            old_value: old.map(str::to_owned),
            new_value: new.map(str::to_owned),
        })
    };
    let ts = at.timestamp();
    assert_eq!(recorded(Setting::AllowedChannel, None, Some("5")), format!("<t:{ts}:R> <@7> allowed <#5>"));
    assert!(recorded(Setting::AllowedChannel, Some("5"), None).ends_with("took <#5> off the allowed channels"));
    assert!(recorded(Setting::BlockedWord, None, Some("gore")).ends_with("blocked `gore`"));
    assert!(recorded(Setting::BlockedWord, Some("gore"), None).ends_with("allowed `gore` again"));
    assert!(recorded(Setting::JobRole, None, Some("9")).ends_with("let <@&9> start image jobs"));
    assert!(
        recorded(Setting::JobRole, Some("9"), None).ends_with("took <@&9> off the roles that may start image jobs")
    );
    assert!(recorded(Setting::Chaos, None, Some("20")).ends_with("chaos not set → **20**"));
    assert!(recorded(Setting::LogChannel, None, Some("5")).ends_with("made <#5> the log channel"));
    assert!(recorded(Setting::LogChannel, Some("5"), None).ends_with("cleared the log channel"));
    assert!(
        recorded(Setting::Notify, Some("on"), Some("off")).ends_with("turned the ping when a long job is done **off**")
    );
    assert_eq!(where_allowed(&[], 100), "`/imagine` works in every channel.");
    assert_eq!(where_allowed(&[1, 2], 100), "`/imagine` works only in <#1>, <#2> (and their threads).");
}
