//! The domain of `/imagine`: turning what a user typed and attached into provider arguments.
//! Pure functions; nothing here talks to Discord, the provider or the database.

pub mod clean;
pub mod flags;
pub mod options;

use crate::{
    provider::ImageToImageArgs,
    settings::{self, GuildDefaults, Source, Sources},
};
use options::{AspectRatio, Performance};

/// Longest prompt accepted, in characters (also registered as the option's `max_length`).
pub const MAX_PROMPT_CHARS: usize = 1500;
/// Longest negative prompt accepted, in characters.
pub const MAX_NEGATIVE_CHARS: usize = 500;

/// Picture types the provider is given.
const IMAGE_TYPES: [(&str, &[&str]); 3] =
    [("image/png", &["png"]), ("image/jpeg", &["jpg", "jpeg"]), ("image/webp", &["webp"])];

/// An attachment as Discord described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputImage {
    pub filename: String,
    pub content_type: Option<String>,
    pub size: u64,
    pub url: String,
}

/// Everything the user gave `/imagine`.
#[derive(Debug, Clone, Default)]
pub struct ImagineRequest {
    pub prompt: String,
    pub image: Option<InputImage>,
    pub image2: Option<InputImage>,
    pub aspect_ratio: Option<AspectRatio>,
    pub performance: Option<Performance>,
    pub stylization: Option<i64>,
    pub chaos: Option<i64>,
    pub weirdness: Option<i64>,
    pub negative_prompt: Option<String>,
    pub style_image: Option<InputImage>,
    pub style_weight: Option<i64>,
    pub omni_image: Option<InputImage>,
    pub omni_weight: Option<i64>,
}

/// A request that passed every check, ready to be stored and sent.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedJob {
    pub prompt_raw: String,
    pub args: ImageToImageArgs,
    /// Sentences for the user about what was changed, dropped or overridden, and which server
    /// defaults were used.
    pub notes: Vec<String>,
    /// Where each value with a server default came from.
    pub sources: Sources,
}

impl PreparedJob {
    /// Every Discord attachment URL the provider will be given, untouched.
    pub fn input_urls(&self) -> Vec<String> {
        let a = &self.args;
        a.image_urls.iter().chain(&a.style_image_urls).chain(&a.omni_image_url).cloned().collect()
    }
}

/// Checks and translates a request, filling what the user left out (neither option nor typed
/// flag) from the server's `defaults`. An `Err` is a sentence for the user that says what to
/// change.
pub fn prepare(req: ImagineRequest, max_image_bytes: u64, defaults: &GuildDefaults) -> Result<PreparedJob, String> {
    let mut image_urls = Vec::new();
    for (option, image) in [("image", &req.image), ("image2", &req.image2)] {
        if let Some(image) = image {
            check_image(option, image, max_image_bytes)?;
            image_urls.push(image.url.clone());
        }
    }
    if image_urls.is_empty() {
        return Err("Attach a source picture with the `image` option; this model turns an image into a new one.".into());
    }
    for (option, image) in [("style_image", &req.style_image), ("omni_image", &req.omni_image)] {
        if let Some(image) = image {
            check_image(option, image, max_image_bytes)?;
        }
    }

    let prompt_chars = req.prompt.chars().count();
    if prompt_chars > MAX_PROMPT_CHARS {
        return Err(format!(
            "Your prompt is {prompt_chars} characters long; the limit is {MAX_PROMPT_CHARS}. Please shorten it."
        ));
    }

    let parsed = flags::parse_prompt(&req.prompt)?;
    let mut notes = parsed.notes;
    let typed = parsed.flags;

    let ints = [
        ("stylization", "--stylize", req.stylization, typed.stylization, defaults.stylization, flags::STYLIZE),
        ("chaos", "--chaos", req.chaos, typed.chaos, defaults.chaos, flags::CHAOS),
        ("weirdness", "--weird", req.weirdness, typed.weirdness, defaults.weirdness, flags::WEIRD),
        ("style_weight", "--sw", req.style_weight, typed.style_weight, None, flags::STYLE_WEIGHT),
        ("omni_weight", "--ow", req.omni_weight, typed.omni_weight, None, flags::OMNI_WEIGHT),
    ];
    let mut merged = [(None, Source::BuiltIn); 5];
    for (slot, (option, flag, given, typed, server, (min, max))) in merged.iter_mut().zip(ints) {
        if let Some(v) = given
            && !(min..=max).contains(&v)
        {
            return Err(format!("`{option}` must be from {min} to {max}; you gave {v}."));
        }
        note_override(option, flag, given, typed, &mut notes);
        *slot = settings::effective(given, typed, server);
    }
    let [
        (stylization, stylization_from),
        (chaos, chaos_from),
        (weirdness, weirdness_from),
        (mut style_weight, _),
        (mut omni_weight, _),
    ] = merged;

    note_override("aspect_ratio", "--ar", req.aspect_ratio, typed.aspect_ratio, &mut notes);
    let (aspect_ratio, aspect_ratio_from) =
        settings::effective(req.aspect_ratio, typed.aspect_ratio, defaults.aspect_ratio);
    let (performance, performance_from) = settings::effective(req.performance, None, defaults.performance);

    let cleaned = clean::clean(&parsed.text, "prompt");
    notes.extend(cleaned.change);
    if cleaned.text.is_empty() {
        return Err("Your prompt is empty once flags and unsupported characters are removed. Describe the picture you want, then add flags at the end.".into());
    }

    let negative_given = req.negative_prompt.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let (Some(_), Some(no)) = (negative_given, &typed.negative) {
        notes.push(format!("The `negative_prompt` option overrides `--no {}` in your prompt.", no.replace('`', "'")));
    }
    let (negative, mut negative_from) = settings::effective(negative_given.map(str::to_owned), typed.negative, None);
    let negative_prompt = match negative {
        Some(text) => {
            if text.chars().count() > MAX_NEGATIVE_CHARS {
                return Err(format!(
                    "Your negative prompt is longer than {MAX_NEGATIVE_CHARS} characters. Please shorten it."
                ));
            }
            let cleaned = clean::clean(&text, "negative prompt");
            notes.extend(cleaned.change);
            if cleaned.text.is_empty() {
                notes.push("The negative prompt was empty after cleaning, so it was left out.".into());
                None
            } else {
                Some(cleaned.text)
            }
        }
        // The server's default negative prompt was cleaned when it was set.
        None => {
            if defaults.negative_prompt.is_some() {
                negative_from = Source::ServerDefault;
            }
            defaults.negative_prompt.clone()
        }
    };

    if req.style_image.is_none() && style_weight.take().is_some() {
        notes.push("Ignored the style weight: it only applies with a `style_image`.".into());
    }
    if req.omni_image.is_none() && omni_weight.take().is_some() {
        notes.push("Ignored the omni weight: it only applies with an `omni_image`.".into());
    }

    let sources = Sources {
        aspect_ratio: aspect_ratio_from,
        performance: performance_from,
        stylization: stylization_from,
        chaos: chaos_from,
        weirdness: weirdness_from,
        negative_prompt: negative_from,
    };
    notes.extend(settings::defaults_note(defaults, &sources));

    Ok(PreparedJob {
        prompt_raw: req.prompt,
        args: ImageToImageArgs {
            mode: "fast".into(),
            prompt: cleaned.text,
            negative_prompt,
            aspect_ratio: aspect_ratio.unwrap_or(AspectRatio::SQUARE).as_str().into(),
            performance,
            stylization,
            chaos,
            weirdness,
            image_urls,
            style_image_urls: req.style_image.map(|i| i.url).into_iter().collect(),
            omni_image_url: req.omni_image.map(|i| i.url),
            style_weight,
            omni_weight,
        },
        notes,
        sources,
    })
}

/// An option typed in Discord wins over the same setting typed as a flag: say so when they differ.
fn note_override<T: PartialEq + std::fmt::Display>(
    option: &str,
    flag: &str,
    given: Option<T>,
    typed: Option<T>,
    notes: &mut Vec<String>,
) {
    if let (Some(g), Some(t)) = (given, typed)
        && g != t
    {
        notes.push(format!("The `{option}` option ({g}) overrides `{flag} {t}` in your prompt."));
    }
}

fn check_image(option: &str, image: &InputImage, max_bytes: u64) -> Result<(), String> {
    let name = image.filename.replace('`', "'");
    let declared = image.content_type.as_deref().map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let extension = image.filename.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let is_image = match declared.as_deref() {
        Some(t) if !t.is_empty() => IMAGE_TYPES.iter().any(|(mime, _)| *mime == t),
        _ => extension.is_some_and(|e| IMAGE_TYPES.iter().any(|(_, exts)| exts.contains(&e.as_str()))),
    };
    if !is_image {
        let kind = declared.map(|t| format!(" ({t})")).unwrap_or_default();
        return Err(format!(
            "`{option}` must be a PNG, JPEG or WebP picture, but `{name}`{kind} is not one. Please attach an image file."
        ));
    }
    if image.size > max_bytes {
        return Err(format!(
            "`{option}` (`{name}`) is {}; the limit is {}. Please attach a smaller picture.",
            human_bytes(image.size),
            human_bytes(max_bytes)
        ));
    }
    Ok(())
}

/// `12.3 MB`-style sizes for messages (1 MB = 1024 × 1024 bytes, as Discord counts).
pub fn human_bytes(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MB { format!("{:.1} MB", bytes as f64 / MB) } else { format!("{} KB", bytes.div_ceil(1024)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 10 * 1024 * 1024;

    fn png(name: &str, url: &str) -> InputImage {
        InputImage { filename: name.into(), content_type: Some("image/png".into()), size: 1000, url: url.into() }
    }

    fn request(prompt: &str) -> ImagineRequest {
        ImagineRequest {
            prompt: prompt.into(),
            image: Some(png("a.png", "https://cdn/a.png?ex=1&hm=2")),
            ..Default::default()
        }
    }

    #[test]
    fn minimal_request_sends_only_required_args() {
        let job = prepare(request("a red fox"), CAP, &GuildDefaults::default()).unwrap();
        let json = serde_json::to_value(&job.args).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"mode":"fast","prompt":"a red fox","aspect_ratio":"1:1","image_urls":["https://cdn/a.png?ex=1&hm=2"]})
        );
        assert!(job.notes.is_empty());
    }

    #[test]
    fn every_option_maps_to_its_argument() {
        let mut req = request("castle");
        req.image2 = Some(png("b.png", "https://cdn/b.png"));
        req.aspect_ratio = AspectRatio::parse_exact("4:5");
        req.performance = Some(Performance::Quality);
        req.stylization = Some(250);
        req.chaos = Some(30);
        req.weirdness = Some(1000);
        req.negative_prompt = Some("fog".into());
        req.style_image = Some(png("s.png", "https://cdn/s.png"));
        req.style_weight = Some(300);
        req.omni_image = Some(png("o.png", "https://cdn/o.png"));
        req.omni_weight = Some(1500);
        let job = prepare(req, CAP, &GuildDefaults::default()).unwrap();
        let json = serde_json::to_value(&job.args).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"mode":"fast","prompt":"castle","negative_prompt":"fog","aspect_ratio":"4:5",
                "performance":"quality","stylization":250,"chaos":30,"weirdness":1000,
                "image_urls":["https://cdn/a.png?ex=1&hm=2","https://cdn/b.png"],
                "style_image_urls":["https://cdn/s.png"],"omni_image_url":"https://cdn/o.png",
                "style_weight":300,"omni_weight":1500})
        );
        assert_eq!(job.input_urls().len(), 4);
    }

    #[test]
    fn options_override_typed_flags_with_a_note() {
        let mut req = request("x --chaos 20 --ar 16:9 --no cars");
        req.chaos = Some(40);
        req.negative_prompt = Some("boats".into());
        let job = prepare(req, CAP, &GuildDefaults::default()).unwrap();
        assert_eq!(job.args.chaos, Some(40));
        assert_eq!(job.args.aspect_ratio, "16:9");
        assert_eq!(job.args.negative_prompt.as_deref(), Some("boats"));
        assert_eq!(job.notes.len(), 2, "{:?}", job.notes);
    }

    fn server_defaults() -> GuildDefaults {
        GuildDefaults {
            aspect_ratio: AspectRatio::parse_exact("16:9"),
            performance: Some(Performance::Quality),
            stylization: Some(250),
            chaos: Some(20),
            weirdness: Some(500),
            negative_prompt: Some("blur".into()),
        }
    }

    #[test]
    fn server_defaults_fill_what_the_user_left_out() {
        let job = prepare(request("a fox"), CAP, &server_defaults()).unwrap();
        let json = serde_json::to_value(&job.args).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"mode":"fast","prompt":"a fox","negative_prompt":"blur","aspect_ratio":"16:9",
                "performance":"quality","stylization":250,"chaos":20,"weirdness":500,
                "image_urls":["https://cdn/a.png?ex=1&hm=2"]})
        );
        assert_eq!(job.sources.aspect_ratio, Source::ServerDefault);
        assert_eq!(job.sources.negative_prompt, Source::ServerDefault);
        assert_eq!(job.notes.len(), 1, "{:?}", job.notes);
        assert!(job.notes[0].starts_with("Server defaults: aspect ratio 16:9, performance quality"), "{:?}", job.notes);
    }

    #[test]
    fn the_user_wins_over_server_defaults() {
        let mut req = request("a fox --ar 2:3 --c 5 --no fog");
        req.stylization = Some(0);
        req.performance = Some(Performance::Speed);
        let job = prepare(req, CAP, &server_defaults()).unwrap();
        let a = &job.args;
        assert_eq!(
            (a.aspect_ratio.as_str(), a.chaos, a.stylization, a.performance, a.negative_prompt.as_deref()),
            ("2:3", Some(5), Some(0), Some(Performance::Speed), Some("fog"))
        );
        assert_eq!(a.weirdness, Some(500), "only the gap is filled");
        let s = job.sources;
        assert_eq!(
            [s.aspect_ratio, s.chaos, s.stylization, s.performance, s.negative_prompt, s.weirdness],
            [
                Source::TypedFlag,
                Source::TypedFlag,
                Source::SlashOption,
                Source::SlashOption,
                Source::TypedFlag,
                Source::ServerDefault
            ]
        );
        assert_eq!(job.notes, ["Server default: weirdness 500. Give the option or the flag to change it."]);

        let job = prepare(request("a fox"), CAP, &GuildDefaults::default()).unwrap();
        assert_eq!(job.sources, Sources::default(), "nothing chosen: built-in defaults");
    }

    #[test]
    fn prompt_is_cleaned_and_the_user_told() {
        let job = prepare(request("sci-fi skyline --no low-poly"), CAP, &GuildDefaults::default()).unwrap();
        assert_eq!(job.args.prompt, "sci fi skyline");
        assert_eq!(job.args.negative_prompt.as_deref(), Some("low poly"));
        assert_eq!(job.notes.len(), 2);
        assert_eq!(job.prompt_raw, "sci-fi skyline --no low-poly");
    }

    #[test]
    fn refusals_say_what_to_change() {
        let mut req = request("x");
        req.image = Some(InputImage {
            filename: "notes.txt".into(),
            content_type: Some("text/plain; charset=utf-8".into()),
            size: 10,
            url: "u".into(),
        });
        let err = prepare(req, CAP, &GuildDefaults::default()).unwrap_err();
        assert!(err.contains("`image`") && err.contains("notes.txt") && err.contains("text/plain"), "{err}");

        let mut req = request("x");
        req.style_image = Some(InputImage { size: CAP + 1, ..png("big.png", "u") });
        let err = prepare(req, CAP, &GuildDefaults::default()).unwrap_err();
        assert!(err.contains("style_image") && err.contains("10.0 MB"), "{err}");

        let err = prepare(ImagineRequest { prompt: "x".into(), ..Default::default() }, CAP, &GuildDefaults::default())
            .unwrap_err();
        assert!(err.contains("`image`"), "{err}");

        let err = prepare(request("--ar 16:9 ---"), CAP, &GuildDefaults::default()).unwrap_err();
        assert!(err.contains("empty"), "{err}");

        let err = prepare(request("x --chaos 101"), CAP, &GuildDefaults::default()).unwrap_err();
        assert!(err.contains("0 to 100"), "{err}");

        let mut req = request("x");
        req.stylization = Some(1001);
        assert!(prepare(req, CAP, &GuildDefaults::default()).unwrap_err().contains("stylization"));

        let err = prepare(request(&"a".repeat(MAX_PROMPT_CHARS + 1)), CAP, &GuildDefaults::default()).unwrap_err();
        assert!(err.contains("limit is 1500"), "{err}");
    }

    #[test]
    fn image_type_falls_back_to_the_extension() {
        let mut req = request("x");
        req.image = Some(InputImage { content_type: None, ..png("photo.JPG", "u") });
        assert!(prepare(req, CAP, &GuildDefaults::default()).is_ok());
        let mut req = request("x");
        req.image = Some(InputImage { content_type: None, ..png("photo.gif", "u") });
        assert!(prepare(req, CAP, &GuildDefaults::default()).is_err());
    }

    #[test]
    fn weights_without_their_image_are_dropped_with_a_note() {
        let mut req = request("x --sw 200");
        req.omni_weight = Some(50);
        let job = prepare(req, CAP, &GuildDefaults::default()).unwrap();
        assert_eq!(job.args.style_weight, None);
        assert_eq!(job.args.omni_weight, None);
        assert_eq!(job.notes.len(), 2);
    }

    #[test]
    fn sizes_read_like_discord() {
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MB");
        assert_eq!(human_bytes(1500), "2 KB");
    }
}
