//! What an integration accepts: names, URLs and passwords are checked and cleaned here, before
//! anything is stored.

use crate::gateways::GatewayKind;
use crate::outbound::NetworkPolicy;
use crate::{Error, Result};

/// Longest integration name and platform username, in characters.
const MAX_NAME_CHARS: usize = 120;
/// Longest API URL, in bytes.
const MAX_URL_BYTES: usize = 2048;
/// Longest platform password, in bytes.
const MAX_PASSWORD_BYTES: usize = 1024;

pub(super) fn clean_name(name: &str) -> Result<String> {
    // One spelling per name, as for contracts: "geo" and "geo\u{200B}" are the same name.
    // Overrides and control characters are refused as typed, before NFKC drops the former.
    let name = crate::text::clean_line("name", name, MAX_NAME_CHARS)?;
    crate::text::clean_line("name", &crate::text::visible(&name), MAX_NAME_CHARS)
}

pub(super) fn clean_username(username: &str) -> Result<String> {
    crate::text::clean_line("username", username, MAX_NAME_CHARS)
}

/// [`clean_url`], and the platform's own rule: OZmap's client adds `/api/v2` itself, so a URL
/// that already ends with it would ask for `/api/v2/api/v2/projects`.
pub(super) fn clean_url_for(
    gateway: GatewayKind,
    api_url: &str,
    network: &NetworkPolicy,
) -> Result<String> {
    let cleaned = clean_url(api_url, network)?;
    if gateway == GatewayKind::Ozmap {
        let path = url::Url::parse(&cleaned)
            .map(|u| u.path().trim_end_matches('/').to_ascii_lowercase())
            .unwrap_or_default();
        if path.ends_with("/api/v2") {
            let base = &cleaned[..cleaned.len() - path.len()];
            return Err(Error::validation(
                "apiUrl",
                format!(
                    "apiUrl is the OZmap installation's address without /api/v2 (the client adds \
                     it): use {base}"
                ),
            ));
        }
    }
    Ok(cleaned)
}

pub(super) fn clean_url(api_url: &str, network: &NetworkPolicy) -> Result<String> {
    if api_url.len() > MAX_URL_BYTES {
        return Err(Error::validation(
            "apiUrl",
            format!("apiUrl is longer than {MAX_URL_BYTES} bytes"),
        ));
    }
    let parsed = url::Url::parse(api_url.trim()).map_err(|_| {
        Error::validation(
            "apiUrl",
            "apiUrl must be an absolute http(s) URL, e.g. https://provedor.geosite.com.br/api",
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Error::validation(
            "apiUrl",
            "apiUrl must use http or https and name a host",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::validation(
            "apiUrl",
            "apiUrl must not carry a query string or fragment: give the platform's base URL",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::validation(
            "apiUrl",
            "apiUrl must not carry credentials; use username and password",
        ));
    }
    network
        .check_url(&parsed)
        .map_err(|refused| Error::validation("apiUrl", format!("apiUrl: {refused}")))?;
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// Where a stored, cleaned URL sends the password: scheme, host, port and path.
pub(super) fn origin_of(api_url: &str) -> Option<(String, String, Option<u16>, String)> {
    let url = url::Url::parse(api_url).ok()?;
    Some((
        url.scheme().to_owned(),
        url.host_str()?.to_owned(),
        url.port_or_known_default(),
        url.path().trim_end_matches('/').to_owned(),
    ))
}

pub(super) fn clean_password(password: &str) -> Result<String> {
    if password.is_empty() {
        return Err(Error::validation("password", "password must not be empty"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::validation(
            "password",
            format!("password is longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if password.contains('\0') {
        return Err(Error::validation(
            "password",
            "password must not contain NUL",
        ));
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::NewIntegration;

    #[test]
    fn urls_are_checked() {
        let open = NetworkPolicy::default();
        assert_eq!(
            clean_url("https://x.example/api/", &open).unwrap(),
            "https://x.example/api"
        );
        for bad in [
            "",
            "x.example",
            "ftp://x.example",
            "https://u:p@x.example",
            "/api",
            "http://169.254.169.254/",
            "http://2130706433/",
            "http://[::1]:8080/",
        ] {
            assert_eq!(
                clean_url(bad, &open).unwrap_err().code(),
                "VALIDATION",
                "{bad}"
            );
        }
    }

    #[test]
    fn ozmap_urls_leave_the_api_prefix_to_the_client() {
        let open = NetworkPolicy::default();
        let refused = clean_url_for(
            GatewayKind::Ozmap,
            "https://isp.ozmap.example/api/v2/",
            &open,
        )
        .unwrap_err();
        assert_eq!(refused.code(), "VALIDATION");
        assert!(
            refused.message().contains("use https://isp.ozmap.example"),
            "{}",
            refused.message()
        );
        assert_eq!(
            clean_url_for(GatewayKind::Ozmap, "https://isp.ozmap.example/", &open).unwrap(),
            "https://isp.ozmap.example"
        );
        assert_eq!(
            clean_url_for(GatewayKind::Geosite, "https://x.example/api", &open).unwrap(),
            "https://x.example/api"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let input = NewIntegration {
            name: "n".into(),
            gateway: GatewayKind::Geosite,
            api_url: "http://x".into(),
            username: "u".into(),
            password: "hunter2-secret".into(),
        };
        assert!(!format!("{input:?}").contains("hunter2"));
    }
}
