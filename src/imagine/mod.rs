//! The domain of `/imagine`: turning what a user typed and attached into provider arguments.
//! Pure functions; nothing here talks to Discord, the provider or the database.

pub mod clean;
pub mod defaults;
pub mod flags;
pub mod options;

use crate::provider::ImageToImageArgs;
use defaults::{GuildDefaults, Source};
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
    pub sources: defaults::Sources,
}

/// Checks and translates a request, filling what the user left out (neither option nor typed
/// flag) from the server's `defaults`. An `Err` is a sentence for the user that says what to
/// change.
pub fn prepare(req: ImagineRequest, max_image_bytes: u64, defaults: &GuildDefaults) -> Result<PreparedJob, String> {
    let mut prepared = translate(req, max_image_bytes, defaults)?;
    prepared.notes.extend(defaults::defaults_note(defaults, &prepared.sources));
    Ok(prepared)
}

/// A Remix: `text` is read like a prompt typed into `/imagine` (flags, cleaning, notes) and applied
/// to `original`, the arguments of the job whose Remix button was pressed, with its sources
/// replaced by `pictures` (the same pictures, freshly linked). A typed flag changes its setting
/// (`--no` the negative prompt); everything else stays as the original had it.
pub fn remix(text: &str, original: &ImageToImageArgs, pictures: &Pictures) -> Result<PreparedJob, String> {
    let input = |url: &String| InputImage {
        // The pictures passed every check when the original job was made; the name only tells
        // `check_image` what they are.
        filename: "source.png".into(),
        content_type: Some("image/png".into()),
        size: 0,
        url: url.clone(),
    };
    let kept = GuildDefaults {
        aspect_ratio: AspectRatio::parse_exact(&original.aspect_ratio),
        performance: original.performance,
        stylization: original.stylization,
        chaos: original.chaos,
        weirdness: original.weirdness,
        negative_prompt: original.negative_prompt.clone(),
    };
    let req = ImagineRequest {
        prompt: text.trim().to_owned(),
        image: pictures.images.first().map(input),
        image2: pictures.images.get(1).map(input),
        style_image: pictures.style.first().map(input),
        omni_image: pictures.omni.as_ref().map(input),
        ..ImagineRequest::default()
    };
    let mut prepared = translate(req, u64::MAX, &kept)?;
    let args = &mut prepared.args;
    if args.style_weight.is_none() && !args.style_image_urls.is_empty() {
        args.style_weight = original.style_weight;
    }
    if args.omni_weight.is_none() && args.omni_image_url.is_some() {
        args.omni_weight = original.omni_weight;
    }
    Ok(prepared)
}

/// The pictures of a job made from a result's button, freshly linked: its sources (`image_urls`),
/// style references and omni reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pictures {
    pub images: Vec<String>,
    pub style: Vec<String>,
    pub omni: Option<String>,
}

fn translate(req: ImagineRequest, max_image_bytes: u64, defaults: &GuildDefaults) -> Result<PreparedJob, String> {
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
        *slot = defaults::effective(given, typed, server);
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
        defaults::effective(req.aspect_ratio, typed.aspect_ratio, defaults.aspect_ratio);
    let (performance, performance_from) = defaults::effective(req.performance, None, defaults.performance);

    let cleaned = clean::clean(&parsed.text, "prompt");
    notes.extend(cleaned.change);
    if cleaned.text.is_empty() {
        return Err("Your prompt is empty once flags and unsupported characters are removed. Describe the picture you want, then add flags at the end.".into());
    }

    let negative_given = req.negative_prompt.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let (Some(_), Some(no)) = (negative_given, &typed.negative) {
        notes.push(format!("The `negative_prompt` option overrides `--no {}` in your prompt.", no.replace('`', "'")));
    }
    let (negative, mut negative_from) = defaults::effective(negative_given.map(str::to_owned), typed.negative, None);
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

    let sources = defaults::Sources {
        aspect_ratio: aspect_ratio_from,
        performance: performance_from,
        stylization: stylization_from,
        chaos: chaos_from,
        weirdness: weirdness_from,
        negative_prompt: negative_from,
    };

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
mod tests;
