//! The domain of `/imagine`: turning what a user typed and attached into provider arguments.
//! Pure functions; nothing here talks to Discord, the provider or the database.

pub mod clean;
pub mod defaults;
pub mod flags;

use crate::spec::{AspectRatio, JobSpec, Pictures};
use defaults::{Choices, GuildDefaults, Layered, Source};

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
    /// The options a default could also have given.
    pub chosen: Choices,
    pub style_image: Option<InputImage>,
    pub style_weight: Option<i64>,
    pub omni_image: Option<InputImage>,
    pub omni_weight: Option<i64>,
}

/// A request that passed every check, ready to be stored and sent.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedJob {
    pub prompt_raw: String,
    pub spec: JobSpec,
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
    prepare_layered(req, max_image_bytes, &Layered::server(defaults))
}

/// [`prepare`] for a member with defaults of their own: what they left out comes from their
/// defaults, then the server's; [`PreparedJob::sources`] and the job's settings line say which.
pub fn prepare_layered(req: ImagineRequest, max_image_bytes: u64, defaults: &Layered) -> Result<PreparedJob, String> {
    let pictures = attached_pictures(&req, max_image_bytes)?;
    let mut prepared = translate(req, pictures, &defaults.values)?;
    prepared.sources = prepared.sources.attributed(&defaults.from);
    prepared.spec.sources = prepared.sources.defaults_only();
    prepared.notes.extend(defaults::defaults_note(&defaults.values, &prepared.sources));
    Ok(prepared)
}

/// A Remix: `text` is read like a prompt typed into `/imagine` (flags, cleaning, notes) and applied
/// to `original`, the spec of the job whose Remix button was pressed, with its pictures replaced
/// by `pictures` (the same pictures, freshly linked; they passed every check when the original
/// was made). A typed flag changes its setting (`--no` the negative prompt); everything else stays
/// as the original had it.
pub fn remix(text: &str, original: &JobSpec, pictures: Pictures) -> Result<PreparedJob, String> {
    let kept = Choices {
        aspect_ratio: Some(original.aspect_ratio),
        performance: original.performance,
        stylization: original.stylization,
        chaos: original.chaos,
        weirdness: original.weirdness,
        negative_prompt: original.negative_prompt.clone(),
    };
    let req = ImagineRequest { prompt: text.trim().to_owned(), ..ImagineRequest::default() };
    let mut prepared = translate(req, pictures, &kept)?;
    let spec = &mut prepared.spec;
    if spec.style_weight.is_none() && !spec.pictures.style.is_empty() {
        spec.style_weight = original.style_weight;
    }
    if spec.omni_weight.is_none() && spec.pictures.omni.is_some() {
        spec.omni_weight = original.omni_weight;
    }
    Ok(prepared)
}

/// The pictures attached to `/imagine`, each checked: at least one source, every one a picture
/// within `max_image_bytes`.
fn attached_pictures(req: &ImagineRequest, max_image_bytes: u64) -> Result<Pictures, String> {
    let mut images = Vec::new();
    for (option, image) in [("image", &req.image), ("image2", &req.image2)] {
        if let Some(image) = image {
            check_image(option, image, max_image_bytes)?;
            images.push(image.url.clone());
        }
    }
    if images.is_empty() {
        return Err("Attach a source picture with the `image` option; this model turns an image into a new one.".into());
    }
    for (option, image) in [("style_image", &req.style_image), ("omni_image", &req.omni_image)] {
        if let Some(image) = image {
            check_image(option, image, max_image_bytes)?;
        }
    }
    let url = |image: &Option<InputImage>| image.as_ref().map(|i| i.url.clone());
    Ok(Pictures { images, style: url(&req.style_image).into_iter().collect(), omni: url(&req.omni_image) })
}

/// The numbers of a job, each with where it came from.
struct Numbers {
    stylization: (Option<i64>, Source),
    chaos: (Option<i64>, Source),
    weirdness: (Option<i64>, Source),
    style_weight: Option<i64>,
    omni_weight: Option<i64>,
}

/// Reads `req`'s prompt (its flags, its words) and options over the server's `defaults`, for a job
/// on `pictures`.
fn translate(req: ImagineRequest, pictures: Pictures, defaults: &GuildDefaults) -> Result<PreparedJob, String> {
    check_prompt_length(&req.prompt)?;
    let parsed = flags::parse_prompt(&req.prompt)?;
    let mut notes = parsed.notes;
    let typed = parsed.flags;
    let numbers = merge_numbers(&req, &typed, defaults, &mut notes)?;

    note_override("aspect_ratio", "--ar", req.chosen.aspect_ratio, typed.aspect_ratio, &mut notes);
    let (aspect_ratio, aspect_ratio_from) =
        defaults::effective(req.chosen.aspect_ratio, typed.aspect_ratio, defaults.aspect_ratio);
    let (performance, performance_from) = defaults::effective(req.chosen.performance, None, defaults.performance);

    let cleaned = clean::clean(&parsed.text, "prompt");
    notes.extend(cleaned.change);
    if cleaned.text.is_empty() {
        return Err("Your prompt is empty once flags and unsupported characters are removed. Describe the picture you want, then add flags at the end.".into());
    }
    let (negative_prompt, negative_from) =
        negative_prompt(req.chosen.negative_prompt.as_deref(), typed.negative, defaults, &mut notes)?;
    let (style_weight, omni_weight) = weights_with_references(&numbers, &pictures, &mut notes);

    let sources = defaults::Sources {
        aspect_ratio: aspect_ratio_from,
        performance: performance_from,
        stylization: numbers.stylization.1,
        chaos: numbers.chaos.1,
        weirdness: numbers.weirdness.1,
        negative_prompt: negative_from,
    };
    Ok(PreparedJob {
        prompt_raw: req.prompt,
        spec: JobSpec {
            prompt: cleaned.text,
            negative_prompt,
            aspect_ratio: aspect_ratio.unwrap_or(AspectRatio::SQUARE),
            performance,
            stylization: numbers.stylization.0,
            chaos: numbers.chaos.0,
            weirdness: numbers.weirdness.0,
            style_weight,
            omni_weight,
            pictures,
            sources: defaults::Sources::default(),
        },
        notes,
        sources,
    })
}

fn check_prompt_length(prompt: &str) -> Result<(), String> {
    let prompt_chars = prompt.chars().count();
    if prompt_chars > MAX_PROMPT_CHARS {
        return Err(format!(
            "Your prompt is {prompt_chars} characters long; the limit is {MAX_PROMPT_CHARS}. Please shorten it."
        ));
    }
    Ok(())
}

/// Each number: the option (checked against its range), else the typed flag, else the server's
/// default; an option that differs from its typed flag wins, with a note.
fn merge_numbers(
    req: &ImagineRequest,
    typed: &flags::TypedFlags,
    defaults: &GuildDefaults,
    notes: &mut Vec<String>,
) -> Result<Numbers, String> {
    let ints = [
        ("stylization", "--stylize", req.chosen.stylization, typed.stylization, defaults.stylization, flags::STYLIZE),
        ("chaos", "--chaos", req.chosen.chaos, typed.chaos, defaults.chaos, flags::CHAOS),
        ("weirdness", "--weird", req.chosen.weirdness, typed.weirdness, defaults.weirdness, flags::WEIRD),
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
        note_override(option, flag, given, typed, notes);
        *slot = defaults::effective(given, typed, server);
    }
    let [stylization, chaos, weirdness, (style_weight, _), (omni_weight, _)] = merged;
    Ok(Numbers { stylization, chaos, weirdness, style_weight, omni_weight })
}

/// The negative prompt: the option (over a typed `--no`, with a note), else the typed `--no`,
/// both cleaned; else the server's default, cleaned when it was set.
fn negative_prompt(
    given: Option<&str>,
    typed: Option<String>,
    defaults: &GuildDefaults,
    notes: &mut Vec<String>,
) -> Result<(Option<String>, Source), String> {
    let given = given.map(str::trim).filter(|s| !s.is_empty());
    if let (Some(_), Some(no)) = (given, &typed) {
        notes.push(format!("The `negative_prompt` option overrides `--no {}` in your prompt.", no.replace('`', "'")));
    }
    let (negative, from) = defaults::effective(given.map(str::to_owned), typed, None);
    let Some(text) = negative else {
        return Ok(match &defaults.negative_prompt {
            Some(server) => (Some(server.clone()), Source::ServerDefault),
            None => (None, from),
        });
    };
    if text.chars().count() > MAX_NEGATIVE_CHARS {
        return Err(format!("Your negative prompt is longer than {MAX_NEGATIVE_CHARS} characters. Please shorten it."));
    }
    let cleaned = clean::clean(&text, "negative prompt");
    notes.extend(cleaned.change);
    if cleaned.text.is_empty() {
        notes.push("The negative prompt was empty after cleaning, so it was left out.".into());
        return Ok((None, from));
    }
    Ok((Some(cleaned.text), from))
}

/// The style and omni weights, each dropped (with a note) when its reference is missing.
fn weights_with_references(
    numbers: &Numbers,
    pictures: &Pictures,
    notes: &mut Vec<String>,
) -> (Option<i64>, Option<i64>) {
    let mut style_weight = numbers.style_weight;
    let mut omni_weight = numbers.omni_weight;
    if pictures.style.is_empty() && style_weight.take().is_some() {
        notes.push("Ignored the style weight: it only applies with a `style_image`.".into());
    }
    if pictures.omni.is_none() && omni_weight.take().is_some() {
        notes.push("Ignored the omni weight: it only applies with an `omni_image`.".into());
    }
    (style_weight, omni_weight)
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
// One decimal of a size is shown: f64's 52-bit mantissa is more than exact enough.
#[allow(clippy::cast_precision_loss)]
pub fn human_bytes(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MB { format!("{:.1} MB", bytes as f64 / MB) } else { format!("{} KB", bytes.div_ceil(1024)) }
}

#[cfg(test)]
mod tests;
