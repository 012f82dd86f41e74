//! ShortAPI stand-in (`POST /api/v1/job/create`, `GET /api/v1/job/query?id=`) plus an image host
//! (`GET /images/{name}`), bound to 127.0.0.1 on a random port, with scripted behaviours.
//!
//! Create requests are validated like the real model page describes (model slug, `mode` "fast",
//! non-empty `prompt` without `-`, `aspect_ratio` in the 11 allowed values, option ranges, no
//! unknown arguments); a violation answers HTTP 200 `{"code":400,"info":"<what is wrong>"}`.
//!
//! Like the real provider, the stand-in downloads the input images of every job it accepts
//! (`image_urls`, `style_image_urls`, `omni_image_url`). A job whose input cannot be downloaded
//! is still accepted and billed, but fails: its queries answer status 3 with
//! `"could not download image_urls[0]: 404"`, whatever its script says.
//!
//! Longer than 400 lines on purpose: the provider's validation rules, its scripted behaviours and
//! the image host are one stand-in, and the rules read best beside the handlers that apply them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const DEFAULT_API_KEY: &str = "test-shortapi-key";
pub const MODEL: &str = "midjourney/midjourney-v7/image-to-image";
pub const ASPECT_RATIOS: [&str; 11] = ["9:16", "2:3", "3:4", "4:5", "5:6", "1:1", "6:5", "5:4", "4:3", "3:2", "16:9"];
pub const PERFORMANCES: [&str; 3] = ["speed", "balance", "quality"];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the stand-in does with a create whose `args.prompt` matches a script.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// create answers `{"code":0,"data":{"amount":amount,"job_id":"job-<n>"}}`; the first
    /// `polls_before_done` queries answer status 0 then 1 (queued, then running; with
    /// `"progress"` when `progress` is set), after that status 2 with `result.images` = `images`
    /// PNG URLs on this host, each about `image_bytes` long.
    Succeed { polls_before_done: u32, images: u32, image_bytes: usize, amount: String, progress: bool },
    /// create answers HTTP 200 `{"code":code,"info":message}`.
    CreateError { code: i64, message: String },
    /// create answers HTTP `status` with `body` (and a `Retry-After` header when given).
    CreateHttpError { status: u16, body: String, retry_after_secs: Option<u64> },
    /// job accepted; after `polls_before_fail` queries (status 0, then 1) the query answers
    /// `{"code":0,"info":message,"data":{"status":status,"error":message}}`.
    FailAtProvider { polls_before_fail: u32, status: Value, message: String },
    /// job accepted; queries always answer status 1.
    NeverFinish,
    /// create answers HTTP 200 with a body that is not JSON.
    MalformedCreate,
    /// query answers HTTP 200 non-JSON `times` times, then behaves like `succeed_after(2)`.
    MalformedQueryThenSucceed { times: u32 },
    /// query answers `{"code":3000,"info":"upstream unstable"}` `times` times, then status 2.
    Code3000ThenSucceed { times: u32 },
    /// create answers HTTP `status` (with a `Retry-After` header when given) `times` times, then
    /// behaves like `succeed_after(2)`.
    CreateHttpErrorThenSucceed { times: u32, status: u16, retry_after_secs: Option<u64> },
    /// job accepted; it finishes `after` its creation (queries answer status 1 until then, 2 with
    /// `images` images of `image_bytes` after). When the create named a `callback_url`, the
    /// stand-in POSTs the finished job there at that moment.
    SucceedAt { after: Duration, images: u32, image_bytes: usize },
    /// job accepted; it waits in the provider's queue (status 0) until `starts` after its
    /// creation, runs (status 1) until `finishes`, then answers status 2 with 4 images of ~2 KiB.
    QueuedThenSucceedAt { starts: Duration, finishes: Duration },
    /// job accepted and already finished: the first query answers status 2 with exactly these
    /// image URLs.
    SucceedWithImages { urls: Vec<String> },
    /// job accepted and already finished, but the first queries fail, one per entry: `0` is an
    /// HTTP 200 body that is not JSON, `429` comes with `Retry-After: 1`, any other number is that
    /// HTTP status. Then status 2 with images.
    QueryErrorsThenSucceed { errors: Vec<u16> },
    /// The job is created (and billed) like `succeed_after(2)`, but the answer is HTTP `status`
    /// from a gateway in front of the provider: the caller cannot tell whether it was taken.
    CreatedThenHttpError { status: u16 },
    /// create sleeps `delay` before answering success (the job exists from the moment the
    /// request arrived, as with a real ambiguous timeout); then like `succeed_after(2)`.
    SlowCreate { delay: Duration },
    /// job accepted; it finishes `after` its creation (4 images of ~2 KiB), but the first
    /// `errors` queries after that answer HTTP 502, as a flaky gateway in front of the provider.
    FinishAtThenQueryErrors { after: Duration, errors: u32 },
}

impl Behaviour {
    /// 4 images of ~2 KiB, amount "0.04", no progress.
    pub fn succeed_after(polls: u32) -> Self {
        Behaviour::Succeed {
            polls_before_done: polls,
            images: 4,
            image_bytes: 2048,
            amount: "0.04".to_string(),
            progress: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RecordedCreate {
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// Parsed JSON body (None if the body was not JSON).
    pub json: Option<Value>,
    /// The job id returned, if a job was created.
    pub job_id: Option<String>,
    /// HTTP status answered.
    pub status: u16,
    pub at: Instant,
}

impl RecordedCreate {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// `json.args`, or Null.
    pub fn args(&self) -> Value {
        self.json.as_ref().map(|j| j["args"].clone()).unwrap_or(Value::Null)
    }
}

#[derive(Clone, Debug)]
pub struct RecordedQuery {
    pub job_id: String,
    pub at: Instant,
}

#[derive(Clone, Debug)]
struct Job {
    behaviour: Behaviour,
    created: Instant,
    polls: u32,
    images: Vec<String>,
    amount: String,
    /// Why the job failed before it started: an input image that could not be downloaded.
    input_error: Option<String>,
    /// Queries answered with an error after the job finished (`FinishAtThenQueryErrors`).
    late_errors: u32,
}

/// The job status the provider reports for a failed job.
const STATUS_FAILED: u64 = 3;
/// How long the provider waits for one input image.
const INPUT_FETCH_TIMEOUT: Duration = Duration::from_secs(2);

struct Inner {
    scripts: Vec<(String, Behaviour)>,
    creates: Vec<RecordedCreate>,
    queries: Vec<RecordedQuery>,
    downloads: usize,
    /// Input images the provider downloaded: URL and HTTP status (0: no answer).
    fetched: Vec<(String, u16)>,
    jobs: HashMap<String, Job>,
    images: HashMap<String, (Vec<u8>, String)>,
    /// Result images not drawn yet (size and seed): each is drawn on its first download, not at
    /// the create. Drawing a job's four at its create held the lock, and a core, through the
    /// benchmark's burst of creates, while the bot answering commands was being measured.
    undrawn: HashMap<String, (usize, u64)>,
    /// Image names that answer with a redirect to this location instead.
    redirects: HashMap<String, String>,
    next_job: u64,
    /// Failures served so far, per script, for the `...ThenSucceed` create behaviours.
    create_failures: HashMap<String, u32>,
    /// How long a finished job's result links work (unset: for ever).
    result_link_lifetime: Option<Duration>,
    /// When each result image's link dies, set when the job is first reported done.
    link_deaths: HashMap<String, Instant>,
    /// GETs per image name.
    fetches: HashMap<String, usize>,
    /// How long the image host takes to answer a GET.
    image_delay: Duration,
    /// Image GETs being answered now, and the most at once so far.
    images_in_flight: usize,
    max_images_in_flight: usize,
}

struct Shared {
    addr: SocketAddr,
    inner: Mutex<Inner>,
    /// Downloads the input images of accepted jobs.
    fetcher: reqwest::Client,
    /// Whether creates are answered; while false they are recorded, then wait unanswered.
    creates_answered: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[derive(Clone)]
pub struct ShortApiStandIn {
    shared: Arc<Shared>,
}

impl ShortApiStandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind shortapi stand-in");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            addr,
            inner: Mutex::new(Inner {
                scripts: Vec::new(),
                creates: Vec::new(),
                queries: Vec::new(),
                downloads: 0,
                fetched: Vec::new(),
                jobs: HashMap::new(),
                images: HashMap::new(),
                undrawn: HashMap::new(),
                redirects: HashMap::new(),
                next_job: 0,
                create_failures: HashMap::new(),
                result_link_lifetime: None,
                link_deaths: HashMap::new(),
                fetches: HashMap::new(),
                image_delay: Duration::ZERO,
                images_in_flight: 0,
                max_images_in_flight: 0,
            }),
            fetcher: reqwest::Client::builder()
                .timeout(INPUT_FETCH_TIMEOUT)
                .build()
                .expect("the input fetcher's client"),
            creates_answered: tokio::sync::watch::channel(true).0,
        });
        let app = Router::new()
            .route("/api/v1/job/create", post(create))
            .route("/api/v1/job/query", get(query))
            .route("/images/{name}", get(image))
            .with_state(shared.clone());
        // Answers go out at once: no delay of the stand-in's own (see the Discord stand-in).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ShortApiStandIn { shared }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.shared.base_url()
    }

    /// `{base}/images/{name}`
    pub fn image_url(&self, name: &str) -> String {
        format!("{}/images/{name}", self.base_url())
    }

    /// Behaviour for creates whose `args.prompt` contains `prompt_contains`; first match wins.
    pub fn script(&self, prompt_contains: &str, behaviour: Behaviour) {
        lock(&self.shared.inner).scripts.push((prompt_contains.to_string(), behaviour));
    }

    /// Removes the scripts for `prompt_contains`: such creates are answered as any other again
    /// (an account whose balance was topped up, say).
    pub fn unscript(&self, prompt_contains: &str) {
        lock(&self.shared.inner).scripts.retain(|(needle, _)| needle != prompt_contains);
    }

    /// From now on creates are recorded, then wait unanswered until [`Self::answer_creates`].
    pub fn hold_creates(&self) {
        self.shared.creates_answered.send_replace(false);
    }

    /// Answers the creates held back, and every create from now on.
    pub fn answer_creates(&self) {
        self.shared.creates_answered.send_replace(true);
    }

    /// When a job created with `SucceedAt` or `FinishAtThenQueryErrors` finishes (finished or not).
    pub fn finishes_at(&self, job_id: &str) -> Option<Instant> {
        let inner = lock(&self.shared.inner);
        let job = inner.jobs.get(job_id)?;
        match job.behaviour {
            Behaviour::SucceedAt { after, .. } | Behaviour::FinishAtThenQueryErrors { after, .. } => {
                Some(job.created + after)
            }
            _ => None,
        }
    }

    /// From now on, a job's result links stop working `lifetime` after the job is first reported
    /// done (the image host answers 403, like an expired signed URL).
    pub fn results_expire_after(&self, lifetime: Duration) {
        lock(&self.shared.inner).result_link_lifetime = Some(lifetime);
    }

    /// From now on the image host takes `delay` to answer each GET.
    pub fn set_image_delay(&self, delay: Duration) {
        lock(&self.shared.inner).image_delay = delay;
    }

    /// The most image GETs the host was answering at once.
    pub fn max_concurrent_image_gets(&self) -> usize {
        lock(&self.shared.inner).max_images_in_flight
    }

    /// GETs of result images of the job `job_id` (expired ones included).
    pub fn result_fetches(&self, job_id: &str) -> usize {
        let prefix = format!("{job_id}-");
        lock(&self.shared.inner).fetches.iter().filter(|(name, _)| name.starts_with(&prefix)).map(|(_, n)| n).sum()
    }

    /// The job id the provider gave the job made for exactly `prompt`.
    pub fn job_id_for(&self, prompt: &str) -> String {
        let create = self.creates().into_iter().find(|c| c.args()["prompt"] == prompt && c.job_id.is_some());
        create.and_then(|c| c.job_id).expect("the provider accepted the job")
    }

    pub fn creates(&self) -> Vec<RecordedCreate> {
        lock(&self.shared.inner).creates.clone()
    }

    pub fn queries(&self) -> Vec<RecordedQuery> {
        lock(&self.shared.inner).queries.clone()
    }

    /// Queries for one job id.
    pub fn queries_for(&self, job_id: &str) -> Vec<RecordedQuery> {
        lock(&self.shared.inner).queries.iter().filter(|q| q.job_id == job_id).cloned().collect()
    }

    /// Number of image-host GETs (including 404s), the provider's own input downloads included.
    pub fn downloads(&self) -> usize {
        lock(&self.shared.inner).downloads
    }

    /// The input images the provider downloaded for the jobs it accepted, in order: each URL as
    /// the create gave it and the HTTP status it got (0 when no answer came).
    pub fn fetched_inputs(&self) -> Vec<(String, u16)> {
        lock(&self.shared.inner).fetched.clone()
    }

    /// Makes `/images/{name}` answer `302 Found` to `location`.
    pub fn add_redirect(&self, name: &str, location: &str) {
        lock(&self.shared.inner).redirects.insert(name.to_string(), location.to_string());
    }

    /// Registers a file on the image host.
    pub fn add_image(&self, name: &str, bytes: Vec<u8>, content_type: &str) {
        let mut inner = lock(&self.shared.inner);
        inner.undrawn.remove(name);
        inner.images.insert(name.to_string(), (bytes, content_type.to_string()));
    }

    /// Polls until `n` creates were recorded (or timeout); returns the creates then.
    pub async fn wait_creates(&self, n: usize, timeout: Duration) -> Vec<RecordedCreate> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.creates();
            if c.len() >= n || Instant::now() >= deadline {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A valid PNG (1x1 grey pixel, padded with a tEXt chunk) of about `total_bytes` bytes
    /// (exactly, when `total_bytes` >= 90).
    pub fn tiny_png(total_bytes: usize) -> Vec<u8> {
        png_with_seed(total_bytes, 0)
    }
}

// ------------------------------------------------------------------------------------------
// PNG
// ------------------------------------------------------------------------------------------

/// PNG's chunk checksum. crc32fast (SIMD) rather than a bitwise loop: the stand-in makes four
/// 256 KiB result images per job, under its lock and on the runtime that also serves the Discord
/// stand-in, and the loop took 4-8 ms an image on the benchmark's 2-core machine: at 50 creates a
/// second, most of a core taken from the bot it measures.
fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

/// A 1x1 8-bit greyscale PNG whose pixel value and padding depend on `seed`, so different images
/// have different bytes.
pub fn png_with_seed(total_bytes: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    // IHDR: width 1, height 1, bit depth 8, colour type 0 (greyscale), no interlace.
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    // IDAT: zlib stream with one stored block holding the scanline [filter 0, pixel].
    let raw = [0u8, (seed % 256) as u8];
    let mut idat = vec![0x78, 0x01, 0x01];
    idat.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    idat.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    idat.extend_from_slice(&raw);
    idat.extend_from_slice(&adler32(&raw).to_be_bytes());
    // 8 signature + 25 IHDR + 12 IDAT header/crc + 13 IDAT data + 12 IEND = 70
    let fixed = out.len() + 12 + idat.len() + 12;
    let text_overhead = 12 + b"Comment\0".len();
    if total_bytes > fixed + text_overhead {
        let pad_len = total_bytes - fixed - text_overhead;
        let mut text = b"Comment\0".to_vec();
        let seed_str = format!("seed {seed} ");
        text.extend(seed_str.bytes().take(pad_len));
        text.resize(b"Comment\0".len() + pad_len, b'.');
        chunk(&mut out, b"tEXt", &text);
    }
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

// ------------------------------------------------------------------------------------------
// Handlers
// ------------------------------------------------------------------------------------------

fn headers_vec(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}

fn json_reply(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {DEFAULT_API_KEY}"))
}

/// Checks a create body like the real API would; `Err(info)` describes the first problem.
pub fn validate_create(body: &Value) -> Result<(), String> {
    let model = body["model"].as_str().unwrap_or_default();
    if model != MODEL {
        return Err(format!("invalid model: {model:?}"));
    }
    let Some(args) = body["args"].as_object() else {
        return Err("args must be an object".into());
    };
    if args.get("mode").and_then(Value::as_str) != Some("fast") {
        return Err("args.mode must be \"fast\"".into());
    }
    let text_ok = |key: &str, required: bool| -> Result<(), String> {
        match args.get(key) {
            None if required => Err(format!("args.{key} is required")),
            None => Ok(()),
            Some(Value::String(s)) => {
                if s.trim().is_empty() {
                    Err(format!("args.{key} must not be empty"))
                } else if s.contains('-') {
                    Err(format!("args.{key} must not contain '-' and other special characters"))
                } else {
                    Ok(())
                }
            }
            Some(_) => Err(format!("args.{key} must be a string")),
        }
    };
    text_ok("prompt", true)?;
    text_ok("negative_prompt", false)?;
    match args.get("aspect_ratio").and_then(Value::as_str) {
        Some(ar) if ASPECT_RATIOS.contains(&ar) => {}
        Some(ar) => {
            return Err(format!("args.aspect_ratio {ar:?} is not one of {ASPECT_RATIOS:?}"));
        }
        None => return Err("args.aspect_ratio is required".into()),
    }
    if let Some(p) = args.get("performance")
        && !p.as_str().is_some_and(|p| PERFORMANCES.contains(&p))
    {
        return Err(format!("args.performance {p} is not one of {PERFORMANCES:?}"));
    }
    for (key, max) in
        [("stylization", 1000), ("chaos", 100), ("weirdness", 3000), ("style_weight", 1000), ("omni_weight", 2000)]
    {
        if let Some(v) = args.get(key) {
            match v.as_i64() {
                Some(n) if (0..=max).contains(&n) => {}
                _ => {
                    return Err(format!("args.{key} must be an integer in 0..={max}, got {v}"));
                }
            }
        }
    }
    for key in ["image_urls", "style_image_urls"] {
        if let Some(v) = args.get(key) {
            let ok = v.as_array().is_some_and(|a| a.iter().all(|u| u.as_str().is_some_and(|s| s.starts_with("http"))));
            if !ok {
                return Err(format!("args.{key} must be a list of URLs"));
            }
        }
    }
    if let Some(v) = args.get("omni_image_url")
        && !v.as_str().is_some_and(|s| s.starts_with("http"))
    {
        return Err("args.omni_image_url must be a URL string".into());
    }
    const KNOWN: [&str; 13] = [
        "mode",
        "prompt",
        "negative_prompt",
        "aspect_ratio",
        "performance",
        "stylization",
        "chaos",
        "weirdness",
        "image_urls",
        "style_image_urls",
        "omni_image_url",
        "style_weight",
        "omni_weight",
    ];
    if let Some(unknown) = args.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown argument args.{unknown}"));
    }
    if let Some(cb) = body.get("callback_url")
        && !cb.as_str().is_some_and(|s| s.starts_with("http"))
    {
        return Err("callback_url must be a URL".into());
    }
    Ok(())
}

fn register_job(shared: &Shared, inner: &mut Inner, behaviour: Behaviour) -> (String, String) {
    inner.next_job += 1;
    let n = inner.next_job;
    let job_id = format!("job-{n}");
    let (count, size, amount) = match &behaviour {
        Behaviour::Succeed { images, image_bytes, amount, .. } => (*images, *image_bytes, amount.clone()),
        Behaviour::SucceedAt { images, image_bytes, .. } => (*images, *image_bytes, "0.04".to_string()),
        Behaviour::MalformedQueryThenSucceed { .. }
        | Behaviour::Code3000ThenSucceed { .. }
        | Behaviour::SlowCreate { .. }
        | Behaviour::CreatedThenHttpError { .. }
        | Behaviour::QueryErrorsThenSucceed { .. }
        | Behaviour::FinishAtThenQueryErrors { .. }
        | Behaviour::QueuedThenSucceedAt { .. } => (4, 2048, "0.04".to_string()),
        _ => (0, 0, "0.04".to_string()),
    };
    let mut images = Vec::new();
    for i in 0..count {
        let name = format!("{job_id}-{i}.png");
        inner.undrawn.insert(name.clone(), (size, n * 16 + u64::from(i)));
        images.push(format!("{}/images/{name}", shared.base_url()));
    }
    let job = Job {
        behaviour,
        created: Instant::now(),
        polls: 0,
        images,
        amount: amount.clone(),
        input_error: None,
        late_errors: 0,
    };
    inner.jobs.insert(job_id.clone(), job);
    (job_id, amount)
}

/// Downloads every input image of `args` as the provider does for a job it accepted, and records
/// what it got; the first input that could not be downloaded, as the provider words it.
async fn fetch_inputs(shared: &Shared, args: &Value) -> Option<String> {
    let mut inputs = Vec::new();
    for key in ["image_urls", "style_image_urls"] {
        for (i, url) in args[key].as_array().into_iter().flatten().enumerate() {
            inputs.extend(url.as_str().map(|u| (format!("{key}[{i}]"), u.to_owned())));
        }
    }
    inputs.extend(args["omni_image_url"].as_str().map(|u| ("omni_image_url".to_owned(), u.to_owned())));
    let downloads = inputs.iter().map(|(field, url)| async move {
        let outcome = match shared.fetcher.get(url).send().await {
            Err(_) => (0, Some("no answer".to_owned())),
            Ok(response) if !response.status().is_success() => {
                let status = response.status().as_u16();
                (status, Some(status.to_string()))
            }
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.bytes().await.err().map(|_| "download interrupted".to_owned()))
            }
        };
        (field, url, outcome)
    });
    let mut failure = None;
    for (field, url, (status, problem)) in futures::future::join_all(downloads).await {
        lock(&shared.inner).fetched.push((url.clone(), status));
        if let Some(problem) = problem {
            failure.get_or_insert(format!("could not download {field}: {problem}"));
        }
    }
    failure
}

async fn create(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    let idx = {
        let mut inner = lock(&shared.inner);
        inner.creates.push(RecordedCreate {
            headers: headers_vec(&headers),
            json: json.clone(),
            job_id: None,
            status: 200,
            at: Instant::now(),
        });
        inner.creates.len() - 1
    };
    let _ = shared.creates_answered.subscribe().wait_for(|answered| *answered).await;
    let set_result = |status: u16, job_id: Option<String>| {
        let mut inner = lock(&shared.inner);
        inner.creates[idx].status = status;
        inner.creates[idx].job_id = job_id;
    };

    if !authorized(&headers) {
        set_result(401, None);
        return json_reply(401, json!({"code": 401, "message": "invalid api key"}));
    }
    let Some(json) = json else {
        return json_reply(200, json!({"code": 400, "info": "request body is not valid JSON"}));
    };
    if let Err(info) = validate_create(&json) {
        return json_reply(200, json!({"code": 400, "info": info}));
    }
    let prompt = json["args"]["prompt"].as_str().unwrap_or_default().to_string();
    let behaviour = {
        let mut inner = lock(&shared.inner);
        let script = inner.scripts.iter().find(|(needle, _)| prompt.contains(needle.as_str())).cloned();
        match script {
            Some((needle, Behaviour::CreateHttpErrorThenSucceed { times, status, retry_after_secs })) => {
                let served = inner.create_failures.entry(needle).or_insert(0);
                if *served < times {
                    *served += 1;
                    Behaviour::CreateHttpError {
                        status,
                        body: json!({"message": "busy"}).to_string(),
                        retry_after_secs,
                    }
                } else {
                    Behaviour::succeed_after(2)
                }
            }
            Some((_, behaviour)) => behaviour,
            None => Behaviour::succeed_after(2),
        }
    };
    match behaviour {
        Behaviour::CreateError { code, message } => json_reply(200, json!({"code": code, "info": message})),
        Behaviour::CreateHttpError { status, body, retry_after_secs } => {
            set_result(status, None);
            let ct = if serde_json::from_str::<Value>(&body).is_ok() { "application/json" } else { "text/plain" };
            let mut resp = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [(header::CONTENT_TYPE, ct)],
                body,
            )
                .into_response();
            if let Some(secs) = retry_after_secs {
                resp.headers_mut().insert(header::RETRY_AFTER, secs.to_string().parse().expect("header"));
            }
            resp
        }
        Behaviour::MalformedCreate => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "<html><body>502 Bad Gateway</body></html>")
                .into_response()
        }
        other => {
            let delay = match &other {
                Behaviour::SlowCreate { delay } => Some(*delay),
                _ => None,
            };
            let (job_id, amount) = {
                let mut inner = lock(&shared.inner);
                let (job_id, amount) = register_job(&shared, &mut inner, other.clone());
                inner.creates[idx].job_id = Some(job_id.clone());
                (job_id, amount)
            };
            if let Some(error) = fetch_inputs(&shared, &json["args"]).await
                && let Some(job) = lock(&shared.inner).jobs.get_mut(&job_id)
            {
                job.input_error = Some(error);
            }
            if let (Behaviour::SucceedAt { after, .. }, Some(callback)) =
                (&other, json["callback_url"].as_str().map(str::to_owned))
            {
                let after = *after;
                let shared = shared.clone();
                let job_id = job_id.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let body = {
                        let inner = lock(&shared.inner);
                        inner
                            .jobs
                            .get(&job_id)
                            .map(|job| input_failed(job, &job_id).unwrap_or_else(|| succeeded(job, &job_id)))
                    };
                    if let Some(body) = body {
                        let _ = reqwest::Client::new().post(&callback).json(&body["data"]).send().await;
                    }
                });
            }
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            if let Behaviour::CreatedThenHttpError { status } = other {
                set_result(status, Some(job_id));
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                return (status, [(header::CONTENT_TYPE, "text/html")], "<html><body>Bad gateway</body></html>")
                    .into_response();
            }
            json_reply(200, json!({"code": 0, "data": {"amount": amount, "job_id": job_id}}))
        }
    }
}

fn running(n: u32, total: u32, progress: bool, job_id: &str) -> Value {
    let status = if n == 0 { 0 } else { 1 };
    let mut data = json!({"job_id": job_id, "status": status});
    if progress {
        data["progress"] = json!((n * 100) / total.max(1));
    }
    json!({"code": 0, "data": data})
}

/// The answer about a job whose input could not be downloaded: failed, with the reason.
fn input_failed(job: &Job, job_id: &str) -> Option<Value> {
    let error = job.input_error.as_ref()?;
    Some(json!({"code": 0, "info": error, "data": {"job_id": job_id, "status": STATUS_FAILED, "error": error}}))
}

fn succeeded(job: &Job, job_id: &str) -> Value {
    let images: Vec<Value> = job.images.iter().map(|u| json!({"url": u})).collect();
    json!({"code": 0, "data": {
        "job_id": job_id,
        "status": 2,
        "amount": job.amount,
        "result": {"images": images}
    }})
}

async fn query(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let job_id = params.get("id").cloned().unwrap_or_default();
    let mut inner = lock(&shared.inner);
    inner.queries.push(RecordedQuery { job_id: job_id.clone(), at: Instant::now() });
    if !authorized(&headers) {
        return json_reply(401, json!({"code": 401, "message": "invalid api key"}));
    }
    let Some(job) = inner.jobs.get_mut(&job_id) else {
        return json_reply(200, json!({"code": 404, "info": "job not found"}));
    };
    let n = job.polls;
    job.polls += 1;
    if let Behaviour::FinishAtThenQueryErrors { after, errors } = job.behaviour
        && job.created.elapsed() >= after
        && job.late_errors < errors
    {
        job.late_errors += 1;
        return json_reply(502, json!({"code": 502, "message": "bad gateway"}));
    }
    let job = job.clone();
    drop(inner);
    if let Some(failed) = input_failed(&job, &job_id) {
        return json_reply(200, failed);
    }
    let body = match &job.behaviour {
        Behaviour::Succeed { polls_before_done, progress, .. } => {
            if n < *polls_before_done {
                running(n, *polls_before_done, *progress, &job_id)
            } else {
                succeeded(&job, &job_id)
            }
        }
        Behaviour::FailAtProvider { polls_before_fail, status, message } => {
            if n < *polls_before_fail {
                running(n, *polls_before_fail, false, &job_id)
            } else {
                json!({"code": 0, "info": message, "data": {
                    "job_id": job_id, "status": status, "error": message
                }})
            }
        }
        Behaviour::NeverFinish => json!({"code": 0, "data": {"job_id": job_id, "status": 1}}),
        Behaviour::SucceedAt { after, .. } | Behaviour::FinishAtThenQueryErrors { after, .. } => {
            if job.created.elapsed() < *after {
                json!({"code": 0, "data": {"job_id": job_id, "status": 1}})
            } else {
                succeeded(&job, &job_id)
            }
        }
        Behaviour::QueuedThenSucceedAt { starts, finishes } => match job.created.elapsed() {
            waited if waited < *starts => json!({"code": 0, "data": {"job_id": job_id, "status": 0}}),
            waited if waited < *finishes => json!({"code": 0, "data": {"job_id": job_id, "status": 1}}),
            _ => succeeded(&job, &job_id),
        },
        Behaviour::MalformedQueryThenSucceed { times } => {
            if n < *times {
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "text/html")],
                    "<!doctype html><title>upstream hiccup</title>",
                )
                    .into_response();
            }
            let m = n - times;
            if m < 2 { running(m, 2, false, &job_id) } else { succeeded(&job, &job_id) }
        }
        Behaviour::SucceedWithImages { urls } => {
            let images: Vec<Value> = urls.iter().map(|u| json!({"url": u})).collect();
            json!({"code": 0, "data": {"job_id": job_id, "status": 2, "amount": job.amount, "result": {"images": images}}})
        }
        Behaviour::QueryErrorsThenSucceed { errors } => match errors.get(n as usize) {
            None => succeeded(&job, &job_id),
            Some(0) => {
                return (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "<!doctype html><title>hiccup</title>")
                    .into_response();
            }
            Some(&status) => {
                let mut response = json_reply(status, json!({"code": status, "message": "try again"}));
                if status == 429 {
                    response.headers_mut().insert(header::RETRY_AFTER, "1".parse().expect("header"));
                }
                return response;
            }
        },
        Behaviour::Code3000ThenSucceed { times } => {
            if n < *times {
                json!({"code": 3000, "info": "upstream unstable"})
            } else {
                succeeded(&job, &job_id)
            }
        }
        Behaviour::SlowCreate { .. } | Behaviour::CreatedThenHttpError { .. } => {
            if n < 2 {
                running(n, 2, false, &job_id)
            } else {
                succeeded(&job, &job_id)
            }
        }
        Behaviour::CreateError { .. }
        | Behaviour::CreateHttpError { .. }
        | Behaviour::CreateHttpErrorThenSucceed { .. }
        | Behaviour::MalformedCreate => {
            json!({"code": 404, "info": "job not found"})
        }
    };
    if body["data"]["status"] == 2 {
        let mut inner = lock(&shared.inner);
        if let Some(lifetime) = inner.result_link_lifetime {
            let dies = Instant::now() + lifetime;
            for url in &job.images {
                let name = url.rsplit('/').next().unwrap_or_default().to_owned();
                inner.link_deaths.entry(name).or_insert(dies);
            }
        }
    }
    json_reply(200, body)
}

async fn image(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let delay = {
        let mut inner = lock(&shared.inner);
        inner.images_in_flight += 1;
        inner.max_images_in_flight = inner.max_images_in_flight.max(inner.images_in_flight);
        inner.image_delay
    };
    tokio::time::sleep(delay).await;
    let response = serve_image(&shared, name);
    lock(&shared.inner).images_in_flight -= 1;
    response
}

fn serve_image(shared: &Shared, name: String) -> Response {
    let mut inner = lock(&shared.inner);
    inner.downloads += 1;
    *inner.fetches.entry(name.clone()).or_default() += 1;
    if inner.link_deaths.get(&name).is_some_and(|dies| Instant::now() >= *dies) {
        return (StatusCode::FORBIDDEN, "Request has expired").into_response();
    }
    if let Some(location) = inner.redirects.get(&name) {
        return (StatusCode::FOUND, [(header::LOCATION, location.clone())], "").into_response();
    }
    if let Some((size, seed)) = inner.undrawn.remove(&name) {
        inner.images.insert(name.clone(), (png_with_seed(size, seed), "image/png".to_string()));
    }
    match inner.images.get(&name) {
        Some((bytes, ct)) => (StatusCode::OK, [(header::CONTENT_TYPE, ct.clone())], bytes.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
