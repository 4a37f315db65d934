//! `--token`: every route but `/health` and the sign-in and sign-out pages needs
//! `Authorization: Bearer T`, or the session cookie that the sign-in form sets for browsers
//! (HttpOnly, SameSite=Strict; `POST /logout` clears it).
//!
//! Nothing is compared as given: both sides are hashed with SHA-256 and the digests compared
//! in constant time, so neither the token's content nor its length shows in the timing. The
//! cookie holds a value derived from the token, not the token itself.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, http::header, web};
use askama::Template;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::web::{NextQuery, html_with_status, local_path, see_other};

/// The session cookie's name.
pub const COOKIE: &str = "fp_session";

/// Routes open without the token.
const OPEN: [&str; 3] = ["/health", "/login", "/logout"];

type Sha = [u8; 32];

fn sha(bytes: &[u8]) -> Sha {
    Sha256::digest(bytes).into()
}

/// The token's digest and the session cookie's value, when a token is set.
pub struct Auth {
    token: Option<(Sha, String)>,
}

impl Auth {
    pub fn new(token: Option<&str>) -> Auth {
        Auth {
            token: token.map(|token| {
                let session = sha(format!("file-processor session\n{token}").as_bytes());
                let session: String = session.iter().map(|b| format!("{b:02x}")).collect();
                (sha(token.as_bytes()), session)
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `given` is the token.
    fn is_token(&self, given: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|(digest, _)| bool::from(sha(given.as_bytes()).ct_eq(digest)))
    }

    /// Whether `given` is the session cookie's value.
    fn is_session(&self, given: &str) -> bool {
        self.token.as_ref().is_some_and(|(_, session)| {
            bool::from(sha(given.as_bytes()).ct_eq(&sha(session.as_bytes())))
        })
    }

    /// Whether the request may pass: no token is set, or it carries the token or the cookie.
    pub fn admits(&self, request: &HttpRequest) -> bool {
        if self.token.is_none() {
            return true;
        }
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|given| self.is_token(given.trim()));
        bearer
            || request
                .cookie(COOKIE)
                .is_some_and(|cookie| self.is_session(cookie.value()))
    }

    fn session_cookie(&self) -> Option<Cookie<'static>> {
        self.token.as_ref().map(|(_, session)| {
            Cookie::build(COOKIE, session.clone())
                .path("/")
                .http_only(true)
                .same_site(SameSite::Strict)
                .finish()
        })
    }
}

/// The middleware: lets through what `Auth::admits`, answers 401 to the rest — the sign-in
/// page to a browser asking for a page, a JSON error to everything else.
pub async fn require_token(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let admitted = OPEN.contains(&request.path())
        || request
            .app_data::<web::Data<Auth>>()
            .is_none_or(|auth| auth.admits(request.request()));
    if admitted {
        return Ok(next.call(request).await?.map_into_boxed_body());
    }
    let wants_page = request.method() == actix_web::http::Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    let response = if wants_page {
        let next = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        login_page(&next, false, actix_web::http::StatusCode::UNAUTHORIZED)
    } else {
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .json(json!({ "error": "this server needs its token: Authorization: Bearer TOKEN" }))
    };
    Ok(request.into_response(response))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    next: &'a str,
    wrong: bool,
}

fn login_page(next: &str, wrong: bool, status: actix_web::http::StatusCode) -> HttpResponse {
    let next = local_path(next).unwrap_or("/");
    html_with_status(
        LoginPage { next, wrong }.render(),
        "the sign-in page",
        status,
    )
}

/// `GET /login`: the sign-in form.
pub async fn login_form(query: web::Query<NextQuery>, auth: web::Data<Auth>) -> HttpResponse {
    let next = query.next.as_deref().unwrap_or("/");
    if !auth.enabled() {
        return see_other(local_path(next).unwrap_or("/"));
    }
    login_page(next, false, actix_web::http::StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: the right token sets the session cookie and goes on to `next`.
pub async fn login(form: web::Form<LoginForm>, auth: web::Data<Auth>) -> HttpResponse {
    let next = form.next.as_deref().and_then(local_path).unwrap_or("/");
    if !auth.enabled() {
        return see_other(next);
    }
    if !auth.is_token(form.token.trim()) {
        log::warn!("sign-in with a wrong token");
        return login_page(next, true, actix_web::http::StatusCode::UNAUTHORIZED);
    }
    let mut response = see_other(next);
    if let Some(cookie) = auth.session_cookie()
        && let Err(err) = response.add_cookie(&cookie)
    {
        log::error!("cannot set the session cookie: {err}");
    }
    response
}

/// `POST /logout`: the session cookie is cleared; back to the sign-in form.
pub async fn logout() -> HttpResponse {
    let mut response = see_other("/login");
    let mut cookie = Cookie::build(COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    cookie.make_removal();
    if let Err(err) = response.add_cookie(&cookie) {
        log::error!("cannot clear the session cookie: {err}");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_the_token_or_the_session_passes() {
        let auth = Auth::new(Some("s3cret"));
        let session = auth.session_cookie().map(|c| c.value().to_string());
        let session = session.unwrap_or_default();
        assert_ne!(session, "s3cret", "the cookie is not the token");
        let admits = |request: TestRequest| auth.admits(&request.to_http_request());
        assert!(!admits(TestRequest::default()));
        assert!(admits(
            TestRequest::default().insert_header(("Authorization", "Bearer s3cret"))
        ));
        assert!(!admits(
            TestRequest::default().insert_header(("Authorization", "Bearer s3cre"))
        ));
        assert!(!admits(
            TestRequest::default().insert_header(("Authorization", "Basic s3cret"))
        ));
        assert!(admits(
            TestRequest::default().cookie(Cookie::new(COOKIE, session.clone()))
        ));
        assert!(!admits(
            TestRequest::default().cookie(Cookie::new(COOKIE, "s3cret"))
        ));
        let open = Auth::new(None);
        assert!(open.admits(&TestRequest::default().to_http_request()));
    }
}
