//! Midjourney-style flags typed at the end of a prompt (`--ar 16:9 --chaos 20 --no cars`).

use crate::spec::AspectRatio;

/// Values the user typed as flags; `None` where the flag was absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TypedFlags {
    pub aspect_ratio: Option<AspectRatio>,
    pub stylization: Option<i64>,
    pub chaos: Option<i64>,
    pub weirdness: Option<i64>,
    pub style_weight: Option<i64>,
    pub omni_weight: Option<i64>,
    pub negative: Option<String>,
}

/// A prompt split into its text and its flags, with notes for the user about anything that was
/// changed or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPrompt {
    pub text: String,
    pub flags: TypedFlags,
    pub notes: Vec<String>,
}

/// An integer flag the provider understands, with its range.
struct IntFlag {
    name: &'static str,
    aliases: &'static [&'static str],
    min: i64,
    max: i64,
}

pub const STYLIZE: (i64, i64) = (0, 1000);
pub const CHAOS: (i64, i64) = (0, 100);
pub const WEIRD: (i64, i64) = (0, 3000);
pub const STYLE_WEIGHT: (i64, i64) = (0, 1000);
pub const OMNI_WEIGHT: (i64, i64) = (0, 2000);

const INT_FLAGS: [IntFlag; 5] = [
    IntFlag { name: "stylize", aliases: &["s", "stylize", "stylization"], min: STYLIZE.0, max: STYLIZE.1 },
    IntFlag { name: "chaos", aliases: &["c", "chaos"], min: CHAOS.0, max: CHAOS.1 },
    IntFlag { name: "weird", aliases: &["w", "weird", "weirdness"], min: WEIRD.0, max: WEIRD.1 },
    IntFlag { name: "sw", aliases: &["sw"], min: STYLE_WEIGHT.0, max: STYLE_WEIGHT.1 },
    IntFlag { name: "ow", aliases: &["ow"], min: OMNI_WEIGHT.0, max: OMNI_WEIGHT.1 },
];

/// Midjourney flags that take no value and that this model cannot honour.
const UNSUPPORTED_SWITCHES: &[&str] = &[
    "raw", "tile", "draft", "fast", "turbo", "relax", "relaxed", "hd", "video", "test", "testp", "creative", "uplight",
    "upbeta", "upanime", "public", "stealth",
];

/// Midjourney flags with a value that this model cannot honour, and what to do instead.
const UNSUPPORTED_WITH_VALUE: &[(&str, &str)] = &[
    ("sref", "attach the style reference with the `style_image` option instead"),
    ("oref", "attach the omni reference with the `omni_image` option instead"),
    ("cref", "this model has no character reference; try `omni_image`"),
    ("cw", "this model has no character reference"),
    ("iw", "this model has no image weight setting"),
    ("sv", "this model has no style version setting"),
    ("q", "use the `performance` option instead"),
    ("quality", "use the `performance` option instead"),
    ("seed", "this model has no seed setting"),
    ("sameseed", "this model has no seed setting"),
    ("v", "this bot always uses Midjourney v7"),
    ("version", "this bot always uses Midjourney v7"),
    ("niji", "this bot always uses Midjourney v7"),
    ("p", "personalization is not available"),
    ("personalize", "personalization is not available"),
    ("profile", "personalization is not available"),
    ("stop", "this model has no stop setting"),
    ("repeat", "this bot runs one job per command"),
    ("r", "this bot runs one job per command"),
    ("style", "this model has no style setting"),
    ("exp", "this model has no exp setting"),
    ("motion", "this bot makes images, not video"),
];

/// Whether `name` (lower case, without `--`) is a flag this parser reads, supported or not.
pub fn is_known(name: &str) -> bool {
    ["ar", "aspect", "no"].contains(&name)
        || INT_FLAGS.iter().any(|f| f.aliases.contains(&name))
        || UNSUPPORTED_SWITCHES.contains(&name)
        || UNSUPPORTED_WITH_VALUE.iter().any(|(n, _)| *n == name)
}

/// Replaces an em or en dash that starts a flag (`—ar`, typed by an autocorrecting keyboard)
/// with `--`.
fn normalise_dashes(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    let mut chars = raw.chars().peekable();
    let mut at_word_start = true;
    while let Some(c) = chars.next() {
        if matches!(c, '—' | '–') && at_word_start {
            // Swallow extra dashes typed after the autocorrected one ("—-ar").
            while chars.peek() == Some(&'-') {
                chars.next();
            }
            if chars.peek().is_some_and(|n| n.is_ascii_alphabetic()) {
                out.push_str("--");
                at_word_start = false;
                continue;
            }
        }
        out.push(c);
        at_word_start = c.is_whitespace();
    }
    out
}

fn flag_name(token: &str) -> Option<&str> {
    let name = token.strip_prefix("--")?;
    name.chars().next().filter(|c| c.is_ascii_alphabetic())?;
    Some(name)
}

/// Splits a prompt into text and flags.
///
/// Errors are sentences for the user: a flag the provider understands with a value it cannot take.
pub fn parse_prompt(raw: &str) -> Result<ParsedPrompt, String> {
    let normalised = normalise_dashes(raw);
    let tokens: Vec<&str> = normalised.split_whitespace().collect();
    let first_flag = tokens.iter().position(|t| flag_name(t).is_some()).unwrap_or(tokens.len());

    let mut text: Vec<&str> = tokens[..first_flag].to_vec();
    let mut flags = TypedFlags::default();
    let mut notes = Vec::new();

    let mut i = first_flag;
    while i < tokens.len() {
        let token = tokens[i];
        let name = flag_name(token).expect("loop starts at a flag").to_ascii_lowercase();
        let end = tokens[i + 1..].iter().position(|t| flag_name(t).is_some()).map_or(tokens.len(), |p| i + 1 + p);
        let values = &tokens[i + 1..end];
        i = end;

        if name == "ar" || name == "aspect" {
            let value = single_value(values, &mut text);
            flags.aspect_ratio = Some(parse_ratio(value.as_deref(), &mut notes)?);
        } else if let Some(spec) = INT_FLAGS.iter().find(|f| f.aliases.contains(&name.as_str())) {
            let value = single_value(values, &mut text);
            let parsed = parse_int(spec, &name, value.as_deref())?;
            let slot = match spec.name {
                "stylize" => &mut flags.stylization,
                "chaos" => &mut flags.chaos,
                "weird" => &mut flags.weirdness,
                "sw" => &mut flags.style_weight,
                _ => &mut flags.omni_weight,
            };
            *slot = Some(parsed);
        } else if name == "no" {
            if values.is_empty() {
                notes.push("`--no` had nothing after it, so it was ignored.".to_owned());
            } else {
                flags.negative = Some(values.join(" "));
            }
        } else if UNSUPPORTED_SWITCHES.contains(&name.as_str()) {
            text.extend_from_slice(values);
            notes.push(format!("Ignored `--{name}`: this model does not support it."));
        } else if let Some((_, advice)) = UNSUPPORTED_WITH_VALUE.iter().find(|(n, _)| *n == name) {
            notes.push(format!("Ignored `{}`: {advice}.", shown(token, values)));
        } else {
            notes.push(format!(
                "Ignored `{}`: not a flag I know. I understand --ar, --stylize (--s), --chaos (--c), --weird (--w), --no, --sw and --ow.",
                shown(token, values)
            ));
        }
    }

    Ok(ParsedPrompt { text: text.join(" "), flags, notes })
}

/// The value of a single-valued flag; words after it belong to the prompt.
fn single_value<'t>(values: &[&'t str], text: &mut Vec<&'t str>) -> Option<String> {
    let (first, rest) = values.split_first()?;
    text.extend_from_slice(rest);
    Some((*first).to_owned())
}

/// A dropped flag as the user typed it, shortened for display.
fn shown(flag: &str, values: &[&str]) -> String {
    let mut s = std::iter::once(flag).chain(values.iter().copied()).collect::<Vec<_>>().join(" ");
    if s.chars().count() > 60 {
        s = s.chars().take(57).collect::<String>() + "...";
    }
    s.replace('`', "'")
}

fn parse_ratio(value: Option<&str>, notes: &mut Vec<String>) -> Result<AspectRatio, String> {
    const HELP: &str = "`--ar` needs a ratio such as `--ar 16:9`.";
    let value = value.ok_or(HELP)?;
    if let Some(exact) = AspectRatio::parse_exact(value) {
        return Ok(exact);
    }
    let parse = |s: &str| s.parse::<f64>().ok().filter(|n| n.is_finite() && *n > 0.0);
    let parts = value.split_once(':').map(|(w, h)| (parse(w), parse(h)));
    let Some((Some(w), Some(h))) = parts else {
        return Err(format!("`--ar {}` is not a ratio; use one like `--ar 16:9`.", value.replace('`', "'")));
    };
    let nearest = AspectRatio::nearest(w, h).ok_or(HELP)?;
    notes.push(format!("Aspect ratio {value} is not available; using the nearest one, {nearest}."));
    Ok(nearest)
}

fn parse_int(spec: &IntFlag, typed: &str, value: Option<&str>) -> Result<i64, String> {
    let range = format!("from {} to {}", spec.min, spec.max);
    let Some(value) = value else {
        return Err(format!("`--{typed}` needs a whole number {range}, e.g. `--{typed} {}`.", spec.max / 2));
    };
    let number: i64 = value
        .parse()
        .map_err(|_| format!("`--{typed} {}` is not a whole number; use one {range}.", value.replace('`', "'")))?;
    if !(spec.min..=spec.max).contains(&number) {
        return Err(format!("`--{typed} {number}` is out of range: {} goes {range}.", spec.name));
    }
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ParsedPrompt {
        parse_prompt(s).unwrap()
    }

    #[test]
    fn prompt_without_flags_is_untouched() {
        let p = parse("a cozy reading nook, golden hour");
        assert_eq!(p.text, "a cozy reading nook, golden hour");
        assert_eq!(p.flags, TypedFlags::default());
        assert!(p.notes.is_empty());
    }

    #[test]
    fn all_supported_flags_are_read() {
        let p = parse("a cat --ar 16:9 --s 250 --chaos 20 --w 300 --no people, dogs --sw 400 --ow 700");
        assert_eq!(p.text, "a cat");
        assert_eq!(p.flags.aspect_ratio.unwrap().as_str(), "16:9");
        assert_eq!(p.flags.stylization, Some(250));
        assert_eq!(p.flags.chaos, Some(20));
        assert_eq!(p.flags.weirdness, Some(300));
        assert_eq!(p.flags.negative.as_deref(), Some("people, dogs"));
        assert_eq!(p.flags.style_weight, Some(400));
        assert_eq!(p.flags.omni_weight, Some(700));
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn long_names_and_case_are_accepted() {
        let p = parse("x --STYLIZE 5 --Chaos 1 --weird 2 --aspect 2:3");
        assert_eq!(p.flags.stylization, Some(5));
        assert_eq!(p.flags.chaos, Some(1));
        assert_eq!(p.flags.weirdness, Some(2));
        assert_eq!(p.flags.aspect_ratio.unwrap().as_str(), "2:3");
    }

    #[test]
    fn em_and_en_dashes_count_as_double_hyphens() {
        let p = parse("a lighthouse —ar 3:2 –chaos 10 —-no fog");
        assert_eq!(p.text, "a lighthouse");
        assert_eq!(p.flags.aspect_ratio.unwrap().as_str(), "3:2");
        assert_eq!(p.flags.chaos, Some(10));
        assert_eq!(p.flags.negative.as_deref(), Some("fog"));
    }

    #[test]
    fn a_dash_inside_text_is_not_a_flag() {
        let p = parse("sci-fi city — at night");
        assert_eq!(p.text, "sci-fi city — at night");
        assert_eq!(p.flags, TypedFlags::default());
    }

    #[test]
    fn odd_ratio_snaps_with_a_note() {
        let p = parse("wide view --ar 7:3");
        assert_eq!(p.flags.aspect_ratio.unwrap().as_str(), "16:9");
        assert_eq!(p.notes.len(), 1);
        assert!(p.notes[0].contains("7:3") && p.notes[0].contains("16:9"), "{:?}", p.notes);
    }

    #[test]
    fn bad_values_are_refused_with_the_range() {
        let err = parse_prompt("x --chaos 150").unwrap_err();
        assert!(err.contains("out of range") && err.contains("0 to 100"), "{err}");
        let err = parse_prompt("x --s lots").unwrap_err();
        assert!(err.contains("not a whole number"), "{err}");
        let err = parse_prompt("x --w").unwrap_err();
        assert!(err.contains("needs a whole number"), "{err}");
        let err = parse_prompt("x --ar wide").unwrap_err();
        assert!(err.contains("not a ratio"), "{err}");
        let err = parse_prompt("x --ar 0:3").unwrap_err();
        assert!(err.contains("not a ratio"), "{err}");
        let err = parse_prompt("x --ow 2001").unwrap_err();
        assert!(err.contains("0 to 2000"), "{err}");
    }

    #[test]
    fn unsupported_and_unknown_flags_are_dropped_with_notes() {
        let p = parse("portrait --seed 42 --v 6 --raw --sref https://x/y.png --foo bar baz --tile");
        assert_eq!(p.text, "portrait");
        assert_eq!(p.notes.len(), 6, "{:?}", p.notes);
        assert!(p.notes[0].contains("--seed 42"));
        assert!(p.notes[3].contains("style_image"));
        assert!(p.notes[4].contains("--foo bar baz") && p.notes[4].contains("not a flag I know"));
    }

    #[test]
    fn words_after_a_single_valued_flag_return_to_the_prompt() {
        let p = parse("a cat --ar 16:9 sitting on a mat");
        assert_eq!(p.text, "a cat sitting on a mat");
        let p = parse("a cat --raw sitting");
        assert_eq!(p.text, "a cat sitting");
    }

    #[test]
    fn only_flags_leave_empty_text() {
        let p = parse("--ar 1:1 --chaos 5");
        assert_eq!(p.text, "");
        assert_eq!(p.flags.chaos, Some(5));
    }

    #[test]
    fn later_flag_wins() {
        assert_eq!(parse("x --c 1 --c 2").flags.chaos, Some(2));
    }

    #[test]
    fn empty_no_is_noted() {
        let p = parse("x --no");
        assert_eq!(p.flags.negative, None);
        assert_eq!(p.notes.len(), 1);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let long = "word ".repeat(5000) + "--ar 16:9";
        assert_eq!(parse(&long).flags.aspect_ratio.unwrap().as_str(), "16:9");
        for s in [
            "",
            "--",
            "---",
            "—",
            "——ar",
            "-- ar",
            "--🦀 1",
            "x --ar :",
            "x --ar 1:",
            "x --ar 99999999999999999999:1",
            "x --c -5",
            "x --c 99999999999999999999999",
            "日本語 --ar 16:9 --no 猫",
            "x —",
            "x –c",
        ] {
            let _ = parse_prompt(s);
        }
        let p = parse("日本語の猫 --no 犬");
        assert_eq!(p.text, "日本語の猫");
        assert_eq!(p.flags.negative.as_deref(), Some("犬"));
        assert!(parse_prompt("x --c -5").is_err());
    }
}
