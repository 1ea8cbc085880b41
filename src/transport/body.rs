//! Reading a platform's answer within a byte cap.

use super::Failure;
use crate::Error;

/// An answer's body, read chunk by chunk up to `cap` bytes: a longer one (by its
/// `Content-Length`, before reading, or as it arrives) is a final failure, so a platform cannot
/// make the gateway hold more than `cap` per answer.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
    endpoint: &str,
) -> std::result::Result<String, Failure> {
    let too_long = |size: String| {
        Failure::Final(Error::PlatformUnavailable(format!(
            "the platform's answer to {endpoint} is {size} bytes, over the {cap} bytes an answer \
             may have (PLATFORM_MAX_BODY_BYTES)"
        )))
    };
    if let Some(length) = response.content_length() {
        if length > cap as u64 {
            return Err(too_long(length.to_string()));
        }
    }
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(too_long(format!("more than {cap}")));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => {
                return Err(Failure::Retry {
                    reason: "response body interrupted".into(),
                    wait: None,
                })
            }
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}
