//! What a job asks for, in the bot's own terms: the prompt, its settings as typed values, and its
//! pictures. A [`JobSpec`] is what `/imagine` and the presses make, what is stored with the job,
//! rendered and varied; the provider's wire arguments are made from it only at the provider's
//! edge (`crate::provider`). Pure: nothing here talks to anything.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The aspect ratios the provider accepts, narrow to wide.
pub const ASPECT_RATIOS: [&str; 11] = ["9:16", "2:3", "3:4", "4:5", "5:6", "1:1", "6:5", "5:4", "4:3", "3:2", "16:9"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AspectRatio(&'static str);

impl AspectRatio {
    pub const SQUARE: AspectRatio = AspectRatio("1:1");

    /// One of the allowed ratios, spelled exactly.
    pub fn parse_exact(text: &str) -> Option<AspectRatio> {
        ASPECT_RATIOS.iter().find(|r| **r == text.trim()).map(|r| AspectRatio(r))
    }

    /// The allowed ratio nearest to `width:height`, compared on a log scale so that 2:1 and 1:2
    /// are equally far from 1:1.
    pub fn nearest(width: f64, height: f64) -> Option<AspectRatio> {
        if !(width.is_finite() && height.is_finite() && width > 0.0 && height > 0.0) {
            return None;
        }
        let target = (width / height).ln();
        ASPECT_RATIOS
            .iter()
            .map(|r| (r, (ratio_value(r).ln() - target).abs()))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(r, _)| AspectRatio(r))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

fn ratio_value(ratio: &str) -> f64 {
    let (w, h) = ratio.split_once(':').expect("allowed ratios are W:H");
    w.parse::<f64>().expect("number") / h.parse::<f64>().expect("number")
}

impl fmt::Display for AspectRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for AspectRatio {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for AspectRatio {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        AspectRatio::parse_exact(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not one of the aspect ratios")))
    }
}

/// How long the provider may take over a job: faster, or better (also the Postgres enum
/// `performance` of the stored defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "performance", rename_all = "lowercase")]
pub enum Performance {
    Speed,
    Balance,
    Quality,
}

impl Performance {
    pub const ALL: [Performance; 3] = [Performance::Speed, Performance::Balance, Performance::Quality];

    pub fn as_str(&self) -> &'static str {
        match self {
            Performance::Speed => "speed",
            Performance::Balance => "balance",
            Performance::Quality => "quality",
        }
    }

    pub fn parse(text: &str) -> Option<Performance> {
        Self::ALL.into_iter().find(|p| p.as_str() == text.trim())
    }
}

impl fmt::Display for Performance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a job asks the provider for. Settings left `None` are the provider's own defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub struct JobSpec {
    pub prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    pub aspect_ratio: AspectRatio,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<Performance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stylization: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chaos: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weirdness: Option<i64>,
    /// Only with a style reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style_weight: Option<i64>,
    /// Only with an omni reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub omni_weight: Option<i64>,
    pub pictures: Pictures,
    /// Which values came from the member's or the server's defaults, for the settings line; not
    /// sent to the provider. Empty for jobs made by a press (their values are the original's).
    #[serde(default, skip_serializing_if = "Sources::is_empty")]
    pub sources: Sources,
}

/// A job's pictures, as links: its sources, style references and omni reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pictures {
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub style: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omni: Option<String>,
}

impl Pictures {
    /// Every link: sources, then style references, then the omni reference.
    pub fn urls(&self) -> impl Iterator<Item = &String> {
        self.images.iter().chain(&self.style).chain(&self.omni)
    }

    pub fn urls_mut(&mut self) -> impl Iterator<Item = &mut String> {
        self.images.iter_mut().chain(&mut self.style).chain(&mut self.omni)
    }
}

/// Where an effective value of a job came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// An option of the command.
    SlashOption,
    /// A flag typed in the prompt (`--ar 16:9`).
    TypedFlag,
    /// The member's own default (`/prefs defaults`), the same in every server.
    Yours,
    /// The server's default (`/settings defaults`).
    ServerDefault,
    /// Nobody chose: the provider's own default.
    #[default]
    BuiltIn,
}

/// Where each value with a default came from, for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Sources {
    pub aspect_ratio: Source,
    pub performance: Source,
    pub stylization: Source,
    pub chaos: Source,
    pub weirdness: Source,
    pub negative_prompt: Source,
}

impl Sources {
    /// Each value `imagine::defaults::effective` took from the defaults, named by the layer it came from
    /// (`from`, see `imagine::defaults::Layered`): the member's own default or the server's.
    pub fn attributed(self, from: &Sources) -> Sources {
        let pick = |source: Source, layer: Source| if source == Source::ServerDefault { layer } else { source };
        Sources {
            aspect_ratio: pick(self.aspect_ratio, from.aspect_ratio),
            performance: pick(self.performance, from.performance),
            stylization: pick(self.stylization, from.stylization),
            chaos: pick(self.chaos, from.chaos),
            weirdness: pick(self.weirdness, from.weirdness),
            negative_prompt: pick(self.negative_prompt, from.negative_prompt),
        }
    }

    /// Only what came from a default (the member's or the server's): what a settings line names.
    pub fn defaults_only(self) -> Sources {
        let keep = |source: Source| match source {
            Source::Yours | Source::ServerDefault => source,
            _ => Source::BuiltIn,
        };
        Sources {
            aspect_ratio: keep(self.aspect_ratio),
            performance: keep(self.performance),
            stylization: keep(self.stylization),
            chaos: keep(self.chaos),
            weirdness: keep(self.weirdness),
            negative_prompt: keep(self.negative_prompt),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Sources::default()
    }

    pub(crate) fn each(&self) -> [Source; 6] {
        [self.aspect_ratio, self.performance, self.stylization, self.chaos, self.weirdness, self.negative_prompt]
    }
}

/// A spec as stored: today's shape, or the shape jobs were stored in before there was a
/// `JobSpec` (the provider's own arguments: a `mode`, which is ignored, and the pictures at the
/// top as `image_urls`, `style_image_urls`, `omni_image_url`). Rows of both kinds stay readable,
/// whichever version of the bot wrote them.
#[derive(Deserialize)]
struct Stored {
    prompt: String,
    #[serde(default)]
    negative_prompt: Option<String>,
    aspect_ratio: AspectRatio,
    #[serde(default)]
    performance: Option<Performance>,
    #[serde(default)]
    stylization: Option<i64>,
    #[serde(default)]
    chaos: Option<i64>,
    #[serde(default)]
    weirdness: Option<i64>,
    #[serde(default)]
    style_weight: Option<i64>,
    #[serde(default)]
    omni_weight: Option<i64>,
    #[serde(default)]
    pictures: Option<Pictures>,
    #[serde(default)]
    image_urls: Vec<String>,
    #[serde(default)]
    style_image_urls: Vec<String>,
    #[serde(default)]
    omni_image_url: Option<String>,
    #[serde(default)]
    sources: Sources,
}

impl From<Stored> for JobSpec {
    fn from(stored: Stored) -> Self {
        let pictures = stored.pictures.unwrap_or(Pictures {
            images: stored.image_urls,
            style: stored.style_image_urls,
            omni: stored.omni_image_url,
        });
        JobSpec {
            prompt: stored.prompt,
            negative_prompt: stored.negative_prompt,
            aspect_ratio: stored.aspect_ratio,
            performance: stored.performance,
            stylization: stored.stylization,
            chaos: stored.chaos,
            weirdness: stored.weirdness,
            style_weight: stored.style_weight,
            omni_weight: stored.omni_weight,
            pictures,
            sources: stored.sources,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn exact_ratios_parse() {
        for r in ASPECT_RATIOS {
            assert_eq!(AspectRatio::parse_exact(r).unwrap().as_str(), r);
        }
        assert_eq!(AspectRatio::parse_exact("7:3"), None);
    }

    #[test]
    fn ratios_snap_to_the_nearest_allowed() {
        assert_eq!(AspectRatio::nearest(7.0, 3.0).unwrap().as_str(), "16:9");
        assert_eq!(AspectRatio::nearest(1.0, 3.0).unwrap().as_str(), "9:16");
        assert_eq!(AspectRatio::nearest(21.0, 9.0).unwrap().as_str(), "16:9");
        assert_eq!(AspectRatio::nearest(1.0, 1.0).unwrap().as_str(), "1:1");
        assert_eq!(AspectRatio::nearest(3.0, 2.0).unwrap().as_str(), "3:2");
        assert_eq!(AspectRatio::nearest(1.05, 1.0).unwrap().as_str(), "1:1");
        assert_eq!(AspectRatio::nearest(0.0, 1.0), None);
    }

    #[test]
    fn a_spec_reads_back_as_it_was_stored() {
        let spec = JobSpec {
            prompt: "a fox".into(),
            negative_prompt: Some("fog".into()),
            aspect_ratio: AspectRatio::parse_exact("4:5").unwrap(),
            performance: Some(Performance::Quality),
            stylization: Some(250),
            chaos: None,
            weirdness: Some(10),
            style_weight: Some(300),
            omni_weight: None,
            pictures: Pictures {
                images: vec!["https://cdn/a.png".into()],
                style: vec!["https://cdn/s.png".into()],
                omni: None,
            },
            sources: Sources { aspect_ratio: Source::Yours, chaos: Source::ServerDefault, ..Sources::default() },
        };
        let stored = serde_json::to_value(&spec).unwrap();
        assert_eq!(stored["pictures"]["images"], json!(["https://cdn/a.png"]));
        assert_eq!(serde_json::from_value::<JobSpec>(stored).unwrap(), spec);
    }

    #[test]
    fn a_spec_stored_as_the_providers_arguments_is_still_read() {
        let before = json!({"mode":"fast","prompt":"a fox","aspect_ratio":"16:9","performance":"speed","chaos":20,
            "image_urls":["https://cdn/a.png","https://cdn/b.png"],"style_image_urls":["https://cdn/s.png"],
            "omni_image_url":"https://cdn/o.png","omni_weight":700});
        let spec: JobSpec = serde_json::from_value(before).unwrap();
        assert_eq!(spec.aspect_ratio, AspectRatio::parse_exact("16:9").unwrap());
        assert_eq!((spec.performance, spec.chaos, spec.omni_weight), (Some(Performance::Speed), Some(20), Some(700)));
        assert_eq!(spec.pictures.images, ["https://cdn/a.png", "https://cdn/b.png"]);
        assert_eq!(spec.pictures.style, ["https://cdn/s.png"]);
        assert_eq!(spec.pictures.omni.as_deref(), Some("https://cdn/o.png"));
    }

    #[test]
    fn an_unknown_aspect_ratio_is_not_read() {
        let stored = json!({"prompt":"a fox","aspect_ratio":"7:3","pictures":{"images":["https://cdn/a.png"]}});
        assert!(serde_json::from_value::<JobSpec>(stored).is_err());
    }
}
