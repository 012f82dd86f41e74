use rust_decimal::Decimal;
use serde_json::json;

use super::*;

#[test]
fn only_words_about_the_request_are_public() {
    for public in ["prompt contains banned words", "Image flagged by moderation", "invalid image url", "NSFW content"] {
        assert!(concerns_the_request(public, Some(200)), "{public}");
    }
    for private in [
        "insufficient balance",
        "Invalid API key",
        "account suspended",
        "model unavailable",
        "internal error",
        "monthly quota exceeded for this plan",
    ] {
        assert!(!concerns_the_request(private, Some(200)), "{private}");
    }
    assert!(!concerns_the_request("invalid image", Some(401)), "an authentication answer is never public");
}

#[test]
fn refusals_of_the_bots_account_are_told_apart() {
    for account in [
        ("insufficient balance", Some(200)),
        ("Invalid API key", Some(200)),
        ("account suspended", Some(200)),
        ("monthly quota exceeded for this plan", Some(200)),
        ("payment required", Some(402)),
        ("anything at all", Some(401)),
        ("anything at all", Some(403)),
    ] {
        assert!(concerns_the_account(account.0, account.1), "{account:?}");
    }
    for other in [
        ("prompt contains banned words", Some(200)),
        ("Image flagged by moderation", Some(200)),
        ("model unavailable", Some(200)),
        ("internal error", Some(200)),
        ("not found", Some(404)),
    ] {
        assert!(!concerns_the_account(other.0, other.1), "{other:?}");
    }
}

#[test]
fn amounts_are_read_defensively() {
    let dec = |s: &str| s.parse::<Decimal>().unwrap();
    let read = |v: Value| parse_amount(Some(&v));
    assert_eq!(read(json!("0.04")), Some(dec("0.04")));
    assert_eq!(read(json!(0.04)), Some(dec("0.04")));
    assert_eq!(read(json!(1)), Some(dec("1")));
    assert_eq!(read(json!(" $0.04 ")), Some(dec("0.04")));
    assert_eq!(read(json!("0,04")), Some(dec("0.04")));
    assert_eq!(read(json!("0.04 USD")), Some(dec("0.04")));
    for odd in [json!("free"), json!("-1"), json!(""), json!("1e3"), json!(null), json!({"v": 1}), json!("0.0.4")] {
        assert_eq!(read(odd.clone()), None, "{odd}");
    }
    assert_eq!(parse_amount(None), None);
}

#[tokio::test]
async fn the_download_client_connects_to_no_private_name() {
    let internal = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = internal.local_addr().unwrap().port();
    let provider = ShortApi::new("https://api.shortapi.ai", SecretString::from("key"), Duration::from_secs(5), 5.0);
    let client = provider.download_client(Duration::from_secs(5)).unwrap();
    let answer = download(&client, &format!("http://localhost:{port}/x.png"), 1 << 20).await;
    assert!(matches!(answer, Err(DownloadError::Failed(_))), "{answer:?}");
    let reached = tokio::time::timeout(Duration::from_millis(200), internal.accept()).await;
    assert!(reached.is_err(), "a connection reached the internal service");
}

/// A status query answered 429 holds every query of the process for the `Retry-After` (the
/// provider's limit is on the key, not on one job), while the pacer's own cap is far higher.
#[tokio::test]
async fn a_query_answered_429_holds_every_query_for_its_retry_after() {
    use std::sync::{Arc, Mutex};
    let arrivals: Arc<Mutex<Vec<(String, std::time::Instant)>>> = Arc::default();
    let seen = arrivals.clone();
    let app = axum::Router::new().route(
        "/api/v1/job/query",
        axum::routing::get(
            move |axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>| {
                let seen = seen.clone();
                async move {
                    let id = q.get("id").cloned().unwrap_or_default();
                    seen.lock().unwrap().push((id.clone(), std::time::Instant::now()));
                    if id == "limited" {
                        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0.6")], "{}".to_owned())
                    } else {
                        (StatusCode::OK, [("retry-after", "0")], json!({"code": 0, "data": {"status": 1}}).to_string())
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let provider = ShortApi::new(&base, SecretString::from("key"), Duration::from_secs(5), 1000.0);

    assert!(provider.query("free").await.is_ok());
    let limited = provider.query("limited").await;
    assert!(matches!(limited, Err(ProviderError::Transient { retry_after: Some(_), .. })), "{limited:?}");
    assert!(provider.query("other").await.is_ok());
    server.abort();

    let arrivals = arrivals.lock().unwrap().clone();
    let at = |id: &str| arrivals.iter().find(|(i, _)| i == id).map(|(_, at)| *at).unwrap();
    assert!(
        at("other").duration_since(at("limited")) >= Duration::from_millis(600),
        "the next query went {:?} after the 429",
        at("other").duration_since(at("limited"))
    );
    assert!(at("limited").duration_since(at("free")) < Duration::from_millis(600), "before it, queries were not held");
}
