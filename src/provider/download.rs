//! Image downloads: provider results, and Discord's files for re-uploads and presses.

use std::time::Duration;

use reqwest::header;

use super::{ShortApi, links, without_url};

impl ShortApi {
    /// The client for image downloads (results, and Discord's files): bounded in time, following
    /// at most three redirects, each to the host (and port) the image was asked from, never to
    /// another one, and connecting only to public addresses, except on this provider's host.
    pub fn download_client(&self, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let origin =
                attempt.previous().first().map(|u| (u.host_str().map(str::to_owned), u.port_or_known_default()));
            let same_host =
                origin == Some((attempt.url().host_str().map(str::to_owned), attempt.url().port_or_known_default()));
            if attempt.previous().len() > 3 || !same_host { attempt.stop() } else { attempt.follow() }
        });
        let resolver = links::PublicOnly { trusted_host: self.origin.as_ref().map(|o| o.host().to_owned()) };
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(policy)
            .dns_resolver(std::sync::Arc::new(resolver))
            .build()
    }
}

/// Why a result image could not be downloaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// The image is bigger than the cap: link it instead of uploading it.
    #[error("image is larger than the {cap}-byte cap")]
    TooLarge { cap: u64 },
    /// The image host sent us elsewhere (another host): not followed, linked instead.
    #[error("redirected to another host")]
    Redirected,
    /// Network trouble or an error answer: worth trying again later.
    #[error("{0}")]
    Failed(String),
}

/// Downloads `url`, refusing anything over `max_bytes`. Returns the bytes and the content type.
pub async fn download(
    http: &reqwest::Client,
    url: &str,
    max_bytes: u64,
) -> Result<(Vec<u8>, Option<String>), DownloadError> {
    use futures::StreamExt;
    let too_large = DownloadError::TooLarge { cap: max_bytes };
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| DownloadError::Failed(format!("download failed: {}", without_url(&e))))?;
    if response.status().is_redirection() {
        // The client follows redirects on the same host only (see `download_client`).
        return Err(DownloadError::Redirected);
    }
    if !response.status().is_success() {
        return Err(DownloadError::Failed(format!("download answered HTTP {}", response.status().as_u16())));
    }
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return Err(too_large);
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
    // Sized once from the announced length (never past the cap): no copies as it grows.
    let announced = response.content_length().unwrap_or(0).min(max_bytes);
    let mut bytes = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| DownloadError::Failed(format!("download interrupted: {}", without_url(&e))))?;
        if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(too_large);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, content_type))
}
