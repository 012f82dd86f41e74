use super::*;
use crate::spec::AspectRatio;

fn blocked(words: &[&str]) -> BlockedWords {
    BlockedWords::new(words.iter().map(|w| blocked_form(w).unwrap()).collect())
}

#[test]
fn folding_ignores_case_accents_and_full_width_forms() {
    assert_eq!(fold("ＧＯＲＥ"), "gore");
    assert_eq!(fold("Góre"), "gore");
    assert_eq!(fold("ÉTÉ ﬁne Ⅻ"), "ete fine xii");
    assert_eq!(fold("İstanbul"), "istanbul");
}

#[test]
fn blocked_words_match_whole_words_only() {
    let list = blocked(&["gore"]);
    for hit in ["gore", "GORE", "ＧＯＲＥ", "Góre", "a gore-fest", "so much gore!", "(gore)", "gore's"] {
        assert_eq!(list.find_in(hit), Some("gore"), "{hit}");
    }
    for miss in ["gorgeous", "gores", "algorement", "g o r e", "", "Gorey"] {
        assert_eq!(list.find_in(miss), None, "{miss}");
    }
}

#[test]
fn blocked_words_are_seen_through_disguises() {
    let list = blocked(&["cat", "blood bath"]);
    for (disguised, word) in [
        ("c.a.t", "cat"),
        ("a C.A.T. sleeps", "cat"),
        ("ca.t", "cat"),
        ("c\u{200B}a\u{200C}t", "cat"),
        ("c\u{200D}a\u{2060}t\u{FEFF}", "cat"),
        ("c\u{00AD}at", "cat"),
        ("\u{0441}at", "cat"),
        ("\u{0421}\u{0410}\u{0422}", "cat"),
        ("\u{03F2}at", "cat"),
        ("\u{03C2}\u{03B1}\u{03A4}", "cat"),
        ("ᴄᴀᴛ", "cat"),
        ("𝐜𝐚𝐭", "cat"),
        ("\u{0441}.\u{200B}\u{0430}.t", "cat"),
        ("bl\u{043E}\u{043E}d bath", "blood bath"),
        ("bl\u{03BF}\u{03BF}d\u{200B} b.a.t.h", "blood bath"),
        ("bl\u{200B}ood·bath", "blood bath"),
    ] {
        assert_eq!(list.find_in(disguised), Some(word), "{disguised:?}");
    }
}

#[test]
fn seeing_through_disguises_adds_no_false_positives() {
    let list = blocked(&["cat", "pot", "gore"]);
    for allowed in [
        "cathedral",
        "a scatter of c.a.ts",
        "c a t",
        "concat.js",
        "cat-like",
        "\u{0441}\u{0430}\u{0442}ира",
        // Russian for "mouth": lower-case `т` does not pass for `t`.
        "\u{0440}\u{043E}\u{0442}",
        "gorge.ous",
        "g.o.r.e.s",
    ] {
        let expected = if allowed == "cat-like" { Some("cat") } else { None };
        assert_eq!(list.find_in(allowed), expected, "{allowed:?}");
    }
}

#[test]
fn phrases_match_their_words_in_a_row() {
    let list = blocked(&["Blood Bath"]);
    assert_eq!(list.as_slice(), ["blood bath"]);
    assert_eq!(list.find_in("a blood-bath at dawn"), Some("blood bath"));
    assert_eq!(list.find_in("BLOOD   bath"), Some("blood bath"));
    assert_eq!(list.find_in("blood orange bath"), None);
    assert_eq!(list.find_in("bloodbath"), None);
}

#[test]
fn word_lists_are_checked() {
    let edit = words_edit(Some(" Gore , ＢＬＯＯＤ,,gore "), None).unwrap();
    assert_eq!(edit, WordsEdit { add: vec!["gore".into(), "blood".into()], remove: vec![] });
    assert_eq!(words_edit(None, Some("gore")).unwrap().remove, ["gore"]);
    assert!(words_edit(None, None).unwrap_err().contains("`add`"));
    assert!(words_edit(Some(" , ,"), None).unwrap_err().contains("no words"));
    assert!(words_edit(Some("!!!"), None).unwrap_err().contains("no letters"));
    assert!(words_edit(Some("gore"), Some("GORE")).unwrap_err().contains("pick one"));
    assert!(words_edit(Some(&"a".repeat(101)), None).unwrap_err().contains("longer than 100"));
}

#[test]
fn the_member_always_wins_over_the_server() {
    assert_eq!(effective(Some(1), Some(2), Some(3)), (Some(1), Source::SlashOption));
    assert_eq!(effective(None, Some(2), Some(3)), (Some(2), Source::TypedFlag));
    assert_eq!(effective(None, None, Some(3)), (Some(3), Source::ServerDefault));
    assert_eq!(effective::<i64>(None, None, None), (None, Source::BuiltIn));
}

#[test]
fn the_note_names_the_server_defaults_used() {
    let defaults = GuildDefaults {
        aspect_ratio: AspectRatio::parse_exact("16:9"),
        chaos: Some(20),
        negative_prompt: Some("blur".into()),
        ..Default::default()
    };
    let sources = Sources { aspect_ratio: Source::ServerDefault, chaos: Source::TypedFlag, ..Default::default() };
    assert_eq!(
        defaults_note(&defaults, &sources).unwrap(),
        "Server default: aspect ratio 16:9. Give the option or the flag to change it."
    );
    let sources = Sources { negative_prompt: Source::ServerDefault, ..sources };
    assert!(defaults_note(&defaults, &sources).unwrap().contains("aspect ratio 16:9, negative prompt"));
    assert_eq!(defaults_note(&defaults, &Sources::default()), None);
}

#[test]
fn defaults_updates_are_checked() {
    let err =
        defaults_update(DefaultsInput { reset: true, values: GuildDefaults { chaos: Some(5), ..Default::default() } })
            .unwrap_err();
    assert!(err.contains("cannot come with new values"), "{err}");
    assert!(defaults_update(DefaultsInput::default()).unwrap_err().contains("at least one"));
    assert_eq!(defaults_update(DefaultsInput { reset: true, ..Default::default() }), Ok(DefaultsUpdate::Reset));
    let err = defaults_update(DefaultsInput {
        values: GuildDefaults { chaos: Some(101), ..Default::default() },
        reset: false,
    })
    .unwrap_err();
    assert!(err.contains("0 to 100"), "{err}");
    let err = defaults_update(DefaultsInput {
        values: GuildDefaults { negative_prompt: Some("###".into()), ..Default::default() },
        reset: false,
    });
    assert!(err.unwrap_err().contains("empty"));

    let update = defaults_update(DefaultsInput {
        values: GuildDefaults { chaos: Some(5), negative_prompt: Some("low-poly".into()), ..Default::default() },
        reset: false,
    })
    .unwrap();
    let DefaultsUpdate::Set { notes, .. } = &update else { panic!("{update:?}") };
    assert_eq!(notes.len(), 1, "the cleaning is explained");
    let current = GuildDefaults { chaos: Some(50), stylization: Some(300), ..Default::default() };
    let after = update.apply(&current);
    assert_eq!(
        after,
        GuildDefaults {
            chaos: Some(5),
            stylization: Some(300),
            negative_prompt: Some("low poly".into()),
            ..Default::default()
        }
    );
    let changes = default_changes(&current, &after);
    assert_eq!(
        changes,
        vec![
            SettingChange { setting: Setting::Chaos, old: Some("50".into()), new: Some("5".into()) },
            SettingChange { setting: Setting::NegativePrompt, old: None, new: Some("low poly".into()) },
        ]
    );
    assert_eq!(DefaultsUpdate::Reset.apply(&after), GuildDefaults::default());
}

#[test]
fn channels_limit_where_image_jobs_start() {
    let open = GuildSettings::default();
    assert!(open.allows_channel(1, None));
    let art = GuildSettings { allowed_channels: vec![10, 20], ..Default::default() };
    assert!(art.allows_channel(10, None));
    assert!(!art.allows_channel(30, None));
    assert!(art.allows_channel(31, Some(20)), "a thread of an allowed channel");
    assert!(!art.allows_channel(31, Some(40)));
}

#[test]
fn roles_limit_who_starts_image_jobs_but_never_admins() {
    let open = GuildSettings::default();
    assert!(open.allows_member(&[], false), "no roles set: everyone");
    let artists = GuildSettings { job_roles: vec![7, 8], ..Default::default() };
    assert!(artists.allows_member(&[3, 8], false));
    assert!(!artists.allows_member(&[3], false));
    assert!(!artists.allows_member(&[], false));
    assert!(artists.allows_member(&[], true), "admins always pass");
}
