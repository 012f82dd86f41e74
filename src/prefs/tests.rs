use super::*;
use crate::spec::AspectRatio;

fn with_options(options: &[(&str, &str)]) -> Prefs {
    Prefs { options: options.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(), ..Prefs::default() }
}

fn pieces(expanded: &Expanded) -> Vec<(&str, Origin)> {
    expanded.pieces.iter().map(|p| (p.text.as_str(), p.origin.clone())).collect()
}

#[test]
fn an_option_expands_in_place_with_single_spaces() {
    let prefs = with_options(&[("cine", "cinematic lighting --ar 21:9")]);
    let expanded = expand("a  red fox\n--cine", &prefs);
    assert_eq!(expanded.text, "a red fox cinematic lighting --ar 21:9");
    assert_eq!(
        pieces(&expanded),
        [("a red fox", Origin::Typed), ("cinematic lighting --ar 21:9", Origin::Option("cine".into()))]
    );
    let parsed = flags::parse_prompt(&expanded.text).unwrap();
    assert_eq!(
        (parsed.text.as_str(), parsed.flags.aspect_ratio.unwrap().as_str()),
        ("a red fox cinematic lighting", "16:9")
    );
}

#[test]
fn expansion_is_one_level_never_recursive() {
    let prefs = with_options(&[("a", "apples --b"), ("b", "bananas --a")]);
    let expanded = expand("fruit --a --b", &prefs);
    assert_eq!(expanded.text, "fruit apples --b bananas --a");
    assert_eq!(
        pieces(&expanded),
        [
            ("fruit", Origin::Typed),
            ("apples --b", Origin::Option("a".into())),
            ("bananas --a", Origin::Option("b".into()))
        ]
    );
    let self_reference = with_options(&[("loop", "again --loop")]);
    assert_eq!(expand("x --loop", &self_reference).text, "x again --loop");
}

#[test]
fn option_names_match_in_any_case_and_after_an_autocorrected_dash() {
    let prefs = with_options(&[("cine", "film")]);
    assert_eq!(expand("fox --CINE", &prefs).text, "fox film");
    assert_eq!(expand("fox —cine", &prefs).text, "fox film");
    assert_eq!(expand("fox --cinema --ar 1:1", &prefs).text, "fox --cinema --ar 1:1", "only whole names");
}

#[test]
fn the_suffix_goes_before_the_first_flag() {
    let prefs = Prefs { suffix: Some("soft light".into()), ..with_options(&[("wide", "panorama --ar 16:9")]) };
    assert_eq!(expand("a fox", &prefs).text, "a fox soft light");
    let expanded = expand("a fox --no cars", &prefs);
    assert_eq!(expanded.text, "a fox soft light --no cars");
    assert_eq!(flags::parse_prompt(&expanded.text).unwrap().flags.negative.as_deref(), Some("cars"));
    let expanded = expand("a fox --wide", &prefs);
    assert_eq!(expanded.text, "a fox panorama soft light --ar 16:9");
    assert_eq!(
        pieces(&expanded),
        [
            ("a fox", Origin::Typed),
            ("panorama", Origin::Option("wide".into())),
            ("soft light", Origin::Suffix),
            ("--ar 16:9", Origin::Option("wide".into()))
        ]
    );
    assert_eq!(expand("", &prefs).text, "soft light");
}

#[test]
fn without_preferences_the_prompt_is_unchanged() {
    let expanded = expand("a fox --ar 16:9", &Prefs::default());
    assert_eq!(expanded.text, "a fox --ar 16:9");
    assert_eq!(pieces(&expanded), [("a fox --ar 16:9", Origin::Typed)]);
}

#[test]
fn a_blocked_word_is_traced_to_its_source() {
    let words = BlockedWords::new(vec!["gore".into(), "red wine".into()]);
    let prefs = Prefs { suffix: Some("lots of gore".into()), ..with_options(&[("dark", "gore --c 10")]) };
    let found = |prompt: &str, prefs: &Prefs| expand(prompt, prefs).blocked_word_source(&words);
    assert_eq!(found("a fox", &prefs), Some(("gore".into(), Origin::Suffix)));
    assert_eq!(found("gore fox", &prefs), Some(("gore".into(), Origin::Typed)), "typed comes first");
    let only_option = Prefs { suffix: None, ..prefs.clone() };
    assert_eq!(found("a fox --dark", &only_option), Some(("gore".into(), Origin::Option("dark".into()))));
    assert_eq!(found("a fox", &only_option), None);
    let across = Prefs { suffix: Some("wine".into()), ..Prefs::default() };
    assert_eq!(found("red", &across), Some(("red wine".into(), Origin::Typed)));
    assert_eq!(Origin::Suffix.describe(), "your suffix");
    assert_eq!(Origin::Option("cine".into()).describe(), "your option `--cine`");
}

#[test]
fn option_names_are_checked() {
    let edit = option_edit("--Cine", Some("  film   grain ")).unwrap();
    assert_eq!((edit.name.as_str(), edit.value.as_deref()), ("cine", Some("film grain")));
    assert_eq!(option_edit("my_style-2", Some("x")).unwrap().name, "my_style-2");
    for bad in ["", "2x", "has space", "emoji🦀", &"a".repeat(33)] {
        assert!(option_edit(bad, Some("x")).unwrap_err().contains("starts with a letter"), "{bad:?}");
    }
    assert!(option_edit(&"a".repeat(32), Some("x")).is_ok());
}

#[test]
fn an_option_may_not_shadow_a_flag() {
    for flag in ["ar", "AR", "no", "s", "stylize", "chaos", "w", "sw", "ow", "raw", "seed", "v", "niji"] {
        let refusal = option_edit(flag, Some("x")).unwrap_err();
        assert!(refusal.contains("already a flag"), "{flag}: {refusal}");
    }
}

#[test]
fn option_values_are_checked_like_flags() {
    assert!(
        option_edit("cine", Some("a --ar banana")).unwrap_err().starts_with("In the value of `--cine`: `--ar banana`")
    );
    assert!(option_edit("cine", Some(&"x".repeat(201))).unwrap_err().contains("longer than 200"));
    let edit = option_edit("cine", Some("film --ar 21:9 --other")).unwrap();
    assert!(edit.notes.iter().any(|n| n.contains("nearest one, 16:9")), "{:?}", edit.notes);
    assert!(edit.notes.iter().any(|n| n.contains("`--other`")), "{:?}", edit.notes);
    assert_eq!(option_edit("cine", Some("  ")).unwrap().value, None, "blank deletes");
    assert_eq!(option_edit("cine", None).unwrap().value, None);
}

#[test]
fn the_twenty_first_option_is_refused() {
    let mut options: BTreeMap<String, String> = (1..=MAX_OPTIONS).map(|i| (format!("o{i}"), "x".into())).collect();
    let extra = option_edit("o21", Some("x")).unwrap();
    assert_eq!(extra.apply(&mut options), OptionOutcome::Full);
    assert_eq!(options.len(), 20);
    let replace = option_edit("o3", Some("y")).unwrap();
    assert_eq!(replace.apply(&mut options), OptionOutcome::Set { old: Some("x".into()) }, "replacing fits");
    assert_eq!(replace.apply(&mut options), OptionOutcome::Unchanged);
    let delete = option_edit("o3", None).unwrap();
    assert_eq!(delete.apply(&mut options), OptionOutcome::Deleted { old: "y".into() });
    assert_eq!(delete.apply(&mut options), OptionOutcome::NotFound);
    assert_eq!(extra.apply(&mut options), OptionOutcome::Set { old: None }, "room again");
}

#[test]
fn the_suffix_is_cleaned_and_bounded() {
    assert_eq!(suffix_update(Some("soft light")).unwrap(), Some(("soft light".into(), None)));
    let (text, note) = suffix_update(Some("neo-noir #mood")).unwrap().unwrap();
    assert_eq!(text, "neo noir mood");
    assert!(note.unwrap().starts_with("Adjusted your suffix"));
    assert!(suffix_update(Some(&"a".repeat(200))).is_ok());
    assert!(suffix_update(Some(&"a".repeat(201))).unwrap_err().contains("longer than 200"));
    assert!(suffix_update(Some("###")).unwrap_err().contains("empty once"));
    assert!(suffix_update(Some("moody --ar 16:9")).unwrap_err().contains("`--ar`"));
    assert_eq!(suffix_update(Some("   ")).unwrap(), None, "blank clears");
    assert_eq!(suffix_update(None).unwrap(), None);
}

#[test]
fn personal_defaults_use_the_server_ranges_with_prefs_wording() {
    let input = |values: GuildDefaults, reset: bool| DefaultsInput { values, reset };
    let chaos = |c| GuildDefaults { chaos: Some(c), ..GuildDefaults::default() };
    assert!(defaults_update(input(chaos(101), false)).unwrap_err().contains("from 0 to 100"));
    assert!(defaults_update(input(chaos(5), true)).unwrap_err().contains("/prefs defaults reset:True"));
    assert!(defaults_update(input(GuildDefaults::default(), false)).unwrap_err().contains("/prefs defaults"));
    assert_eq!(defaults_update(input(GuildDefaults::default(), true)).unwrap(), DefaultsUpdate::Reset);
    assert!(matches!(defaults_update(input(chaos(5), false)).unwrap(), DefaultsUpdate::Set { .. }));
}

#[test]
fn effective_defaults_name_whose_they_are() {
    let mine = GuildDefaults { aspect_ratio: AspectRatio::parse_exact("16:9"), ..GuildDefaults::default() };
    let server =
        GuildDefaults { aspect_ratio: AspectRatio::parse_exact("2:3"), chaos: Some(20), ..GuildDefaults::default() };
    let shown: Vec<(String, Layer)> =
        effective_defaults(&mine, &server).into_iter().map(|(_, value, layer)| (value, layer)).collect();
    assert_eq!(shown[0], ("16:9".into(), Layer::Yours));
    assert_eq!(shown[2], ("100".into(), Layer::BuiltIn));
    assert_eq!(shown[3], ("20".into(), Layer::Server));
}
