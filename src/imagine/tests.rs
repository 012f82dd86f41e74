use super::defaults::Sources;
use crate::{
    provider::ImageToImageArgs,
    spec::{JobSpec, Performance},
};

/// What the provider is sent for `job`.
fn wire(job: &PreparedJob) -> serde_json::Value {
    serde_json::to_value(ImageToImageArgs::from(&job.spec)).unwrap()
}
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
    let json = wire(&job);
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
    req.chosen.aspect_ratio = AspectRatio::parse_exact("4:5");
    req.chosen.performance = Some(Performance::Quality);
    req.chosen.stylization = Some(250);
    req.chosen.chaos = Some(30);
    req.chosen.weirdness = Some(1000);
    req.chosen.negative_prompt = Some("fog".into());
    req.style_image = Some(png("s.png", "https://cdn/s.png"));
    req.style_weight = Some(300);
    req.omni_image = Some(png("o.png", "https://cdn/o.png"));
    req.omni_weight = Some(1500);
    let job = prepare(req, CAP, &GuildDefaults::default()).unwrap();
    let json = wire(&job);
    assert_eq!(
        json,
        serde_json::json!({"mode":"fast","prompt":"castle","negative_prompt":"fog","aspect_ratio":"4:5",
            "performance":"quality","stylization":250,"chaos":30,"weirdness":1000,
            "image_urls":["https://cdn/a.png?ex=1&hm=2","https://cdn/b.png"],
            "style_image_urls":["https://cdn/s.png"],"omni_image_url":"https://cdn/o.png",
            "style_weight":300,"omni_weight":1500})
    );
    assert_eq!(job.spec.pictures.urls().count(), 4);
}

#[test]
fn options_override_typed_flags_with_a_note() {
    let mut req = request("x --chaos 20 --ar 16:9 --no cars");
    req.chosen.chaos = Some(40);
    req.chosen.negative_prompt = Some("boats".into());
    let job = prepare(req, CAP, &GuildDefaults::default()).unwrap();
    assert_eq!(job.spec.chaos, Some(40));
    assert_eq!(job.spec.aspect_ratio.as_str(), "16:9");
    assert_eq!(job.spec.negative_prompt.as_deref(), Some("boats"));
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
    let json = wire(&job);
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
    req.chosen.stylization = Some(0);
    req.chosen.performance = Some(Performance::Speed);
    let job = prepare(req, CAP, &server_defaults()).unwrap();
    let a = &job.spec;
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
    assert_eq!(job.spec.prompt, "sci fi skyline");
    assert_eq!(job.spec.negative_prompt.as_deref(), Some("low poly"));
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
    req.chosen.stylization = Some(1001);
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
    assert_eq!(job.spec.style_weight, None);
    assert_eq!(job.spec.omni_weight, None);
    assert_eq!(job.notes.len(), 2);
}

#[test]
fn sizes_read_like_discord() {
    assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MB");
    assert_eq!(human_bytes(1500), "2 KB");
}

fn original() -> JobSpec {
    let mut req = request("a castle on a hill");
    req.chosen.aspect_ratio = AspectRatio::parse_exact("16:9");
    req.chosen.performance = Some(Performance::Quality);
    req.chosen.stylization = Some(250);
    req.chosen.chaos = Some(30);
    req.chosen.negative_prompt = Some("fog".into());
    req.style_image = Some(png("s.png", "https://cdn/s.png"));
    req.style_weight = Some(300);
    prepare(req, CAP, &GuildDefaults::default()).unwrap().spec
}

fn fresh() -> (Vec<String>, Vec<String>) {
    (vec!["https://cdn/fresh-a.png?ex=9".into()], vec!["https://cdn/fresh-s.png?ex=9".into()])
}

#[test]
fn a_remix_keeps_everything_but_the_prompt() {
    let (images, style) = fresh();
    let pictures = Pictures { images: images.clone(), style: style.clone(), omni: None };
    let job = remix("a castle at night", &original(), pictures).unwrap();
    let mut expected = original();
    expected.prompt = "a castle at night".into();
    expected.pictures.images = images.clone();
    expected.pictures.style = style.clone();
    assert_eq!(job.spec, expected);
    assert!(job.notes.is_empty(), "no server-default note for kept settings: {:?}", job.notes);
}

#[test]
fn a_remix_reads_typed_flags_like_imagine() {
    let (images, style) = fresh();
    let pictures = Pictures { images, style, omni: None };
    let job = remix("  a castle at night --ar 2:3 --chaos 80 --sw 50 --no rain  ", &original(), pictures).unwrap();
    assert_eq!(job.spec.prompt, "a castle at night");
    assert_eq!(job.spec.aspect_ratio.as_str(), "2:3");
    assert_eq!(job.spec.chaos, Some(80));
    assert_eq!(job.spec.style_weight, Some(50));
    assert_eq!(job.spec.negative_prompt.as_deref(), Some("rain"));
    assert_eq!(job.spec.stylization, Some(250), "untyped settings stay as they were");
    assert_eq!(job.spec.performance, Some(Performance::Quality));
}

#[test]
fn a_remix_without_words_or_with_bad_flags_is_refused() {
    let (images, style) = fresh();
    let pictures = Pictures { images, style, omni: None };
    for text in ["", "   ", "--ar 16:9", "a castle --chaos 500", "a castle --ar"] {
        assert!(remix(text, &original(), pictures.clone()).is_err(), "{text:?}");
    }
    let long = "x".repeat(MAX_PROMPT_CHARS + 1);
    assert!(remix(&long, &original(), pictures).unwrap_err().contains("characters long"));
}

#[test]
fn a_remix_keeps_the_omni_weight_unless_one_is_typed() {
    let mut req = request("a robot");
    req.omni_image = Some(png("o.png", "https://cdn/o.png"));
    req.omni_weight = Some(700);
    let original = prepare(req, CAP, &GuildDefaults::default()).unwrap().spec;
    let images = vec!["https://cdn/fresh-a.png".to_owned()];
    let omni = "https://cdn/fresh-o.png".to_owned();
    let pictures = Pictures { images, style: vec![], omni: Some(omni.clone()) };
    let kept = remix("a robot dancing", &original, pictures.clone()).unwrap().spec;
    assert_eq!((kept.omni_weight, kept.pictures.omni.as_deref()), (Some(700), Some(omni.as_str())));
    let typed = remix("a robot dancing --ow 50", &original, pictures).unwrap().spec;
    assert_eq!(typed.omni_weight, Some(50));
}
