//! The cross-site guard in front of every route, token or not: a request for a `Host` this
//! daemon does not serve gets 421 (DNS rebinding), and a state-changing request sent by a page
//! of another origin gets 403 (cross-site request forgery: a multipart form needs no
//! preflight).
//!
//! Served hosts: any IP literal (a page cannot be served from someone else's address, so an IP
//! is never a rebinding), `localhost`, the `--host` name and `--allowed-hosts`. A request
//! without `Origin` or `Referer` is not a browser's cross-site request (curl, scripts) and
//! passes. This guard never looks at the token; `auth` comes after it.

use std::net::IpAddr;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// The host names the server answers to, lower-cased, without ports.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    names: Vec<String>,
    /// The names given with `--allowed-hosts`: pages served under them are this daemon's own
    /// (behind a proxy that rewrites `Host`, the `Origin` still names the public host).
    listed: Vec<String>,
    /// `--allowed-hosts '*'`: every name (behind a proxy that checks it).
    any: bool,
}

impl AllowedHosts {
    /// `localhost`, the `--host` address and the extra names of `--allowed-hosts`.
    pub fn new(host: &str, extra: &[String]) -> AllowedHosts {
        let mut names = vec!["localhost".to_string(), strip_brackets(host).to_lowercase()];
        let mut listed = Vec::new();
        let mut any = false;
        for name in extra {
            let name = name.trim().to_lowercase();
            match name.as_str() {
                "" => {}
                "*" => any = true,
                _ => listed.push(host_of(&name).to_string()),
            }
        }
        names.extend(listed.iter().cloned());
        AllowedHosts { names, listed, any }
    }

    /// Whether `origin` is a page of a host named with `--allowed-hosts`.
    fn lists_origin(&self, origin: &str) -> bool {
        origin_of(origin).is_some_and(|(_, authority)| {
            let name = host_of(authority).to_lowercase();
            self.listed.contains(&name)
        })
    }

    /// Whether a `Host` header value (`name[:port]`) is one this daemon serves.
    pub fn admits(&self, host: &str) -> bool {
        let name = host_of(host).to_lowercase();
        self.any || strip_brackets(&name).parse::<IpAddr>().is_ok() || self.names.contains(&name)
    }
}

/// `[::1]` → `::1`.
fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host)
}

/// The host part of `host[:port]` (IPv6 literals keep their brackets).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// `scheme://authority` of a URL (an `Origin` is exactly that; a `Referer` has a path too).
fn origin_of(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some((scheme, authority))
}

/// Whether `origin` (`scheme://host[:port]`) is this server as the request addressed it.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some((scheme, authority)) = origin_of(origin) else {
        return false;
    };
    let Some(host) = host else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let normalize = |authority: &str| {
        let authority = authority.to_ascii_lowercase();
        let name = host_of(&authority).to_string();
        let port = authority[name.len()..]
            .strip_prefix(':')
            .unwrap_or(default_port)
            .to_string();
        (name, port)
    };
    normalize(authority) == normalize(host)
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn refuse(request: ServiceRequest, status: StatusCode, message: &str) -> ServiceResponse<BoxBody> {
    let response = HttpResponse::build(status).json(json!({ "error": message }));
    request.into_response(response)
}

/// The middleware: 421 for an unserved `Host`, 403 for a cross-origin state change.
pub async fn check_origin_and_host(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|value| value.to_str().unwrap_or("\u{fffd}").to_string());
    let allowed = request.app_data::<web::Data<AllowedHosts>>().cloned();
    if let (Some(host), Some(allowed)) = (&host, &allowed)
        && !allowed.admits(host)
    {
        log::debug!("refused a request for host {host:?} (not in --allowed-hosts)");
        return Ok(refuse(
            request,
            StatusCode::MISDIRECTED_REQUEST,
            "this server does not answer to that host name; add it with --allowed-hosts",
        ));
    }
    if is_state_changing(request.method()) {
        let headers = request.headers();
        let claimed = headers
            .get(header::ORIGIN)
            .or_else(|| headers.get(header::REFERER))
            .map(|value| value.to_str().unwrap_or(""));
        if let Some(origin) = claimed
            && !same_origin(origin, host.as_deref())
            && !allowed
                .as_ref()
                .is_some_and(|allowed| allowed.lists_origin(origin))
        {
            log::debug!(
                "refused a {} {} sent from {origin:?}",
                request.method(),
                request.path()
            );
            return Ok(refuse(
                request,
                StatusCode::FORBIDDEN,
                "cross-origin request refused: a page of another site cannot change this server",
            ));
        }
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_hosts() {
        let allowed = AllowedHosts::new("127.0.0.1", &["Files.Example.com".to_string()]);
        for good in [
            "localhost",
            "localhost:5000",
            "LOCALHOST:5000",
            "127.0.0.1:5000",
            "10.1.2.3",
            "[::1]:5000",
            "files.example.com:8443",
        ] {
            assert!(allowed.admits(good), "{good}");
        }
        for bad in [
            "evil.example",
            "evil.example:5000",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!allowed.admits(bad), "{bad}");
        }
        assert!(AllowedHosts::new("0.0.0.0", &["*".to_string()]).admits("anything"));
        // Behind a proxy: a page of a listed name is ours, a page elsewhere is not.
        assert!(allowed.lists_origin("https://files.example.com"));
        assert!(!allowed.lists_origin("https://evil.example"));
        assert!(
            !allowed.lists_origin("http://localhost:5000"),
            "only listed names"
        );
        assert!(AllowedHosts::new("myhost", &[]).admits("MyHost:80"));
    }

    #[test]
    fn origins() {
        let host = Some("127.0.0.1:5000");
        assert!(same_origin("http://127.0.0.1:5000", host));
        assert!(same_origin("http://127.0.0.1:5000/jobs/x?y", host));
        assert!(!same_origin("http://127.0.0.1:5001", host));
        assert!(!same_origin("http://evil.example", host));
        assert!(!same_origin("null", host));
        assert!(!same_origin("http://127.0.0.1:5000", None));
        assert!(same_origin("http://localhost", Some("localhost:80")));
        assert!(same_origin("https://[::1]", Some("[::1]:443")));
        assert!(!same_origin("ftp://localhost", Some("localhost")));
    }
}
