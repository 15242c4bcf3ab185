//! Downloading one file over HTTPS, for `aicockpit model install` (the only
//! download AiCockpit does, and only when a user asks for it).

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::AiError;

/// Fetch `url` into `dest`, returning the bytes written. Errors are
/// [`AiError`]s naming `source` (e.g. "Hugging Face hub").
pub async fn download(source: &str, url: &str, dest: &Path) -> Result<u64, AiError> {
    let fail = |message: String| AiError::Connect {
        service: source.to_string(),
        url: url.to_string(),
        message,
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|error| fail(error.to_string()))?;
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|error| fail(crate::client::root_cause(&error)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(AiError::Status {
            service: source.to_string(),
            status: status.as_u16(),
            message: format!("GET {url}"),
        });
    }
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|error| fail(format!("{}: {error}", dest.display())))?;
    let mut written = 0u64;
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|error| fail(error.to_string()))?;
        file.write_all(&piece)
            .await
            .map_err(|error| fail(format!("{}: {error}", dest.display())))?;
        written += piece.len() as u64;
    }
    file.flush()
        .await
        .map_err(|error| fail(format!("{}: {error}", dest.display())))?;
    Ok(written)
}
