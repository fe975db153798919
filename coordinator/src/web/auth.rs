//! Who may read the dashboard. A coordinator without a token is open (one laptop under
//! `allsweep run`). Once it has one, every page and endpoint that reads or changes sweeps
//! needs a user or admin token: as `Authorization: Bearer TOKEN` (scripts, Grafana, a
//! Prometheus with credentials), or as the cookie the login form sets after checking the
//! token. The cookie is `HttpOnly` (no script reads it) and `SameSite=Strict` (no other
//! site's page sends it), and a form post from another origin is refused as well. The same
//! [`TokenBook`](crate::access::TokenBook) as gRPC decides, so a revoked token stops working
//! here too.

use axum::extract::{Form, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::fragments::layout;
use super::WebState;
use crate::access::{Caller, Role};

/// The cookie that carries the token after a login.
pub const COOKIE: &str = "allsweep_token";

/// The bearer token of a request: its `Authorization` header, else its login cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return Some(value.to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, token)| format!("Bearer {token}"))
}

/// The caller of a request, if its token lets it read and change sweeps.
fn user(state: &WebState, headers: &HeaderMap) -> Result<Caller, &'static str> {
    let caller = state.tokens.resolve(presented(headers).as_deref()).map_err(|_| "a valid token is needed")?;
    if caller.role.permits(Role::User) {
        Ok(caller)
    } else {
        Err("this token's role may not read sweeps (a user or admin token is needed)")
    }
}

/// Refuses a request without a user token: a browser asking for a page is sent to the login
/// form, anything else gets 401 with the reason. A form post must come from this origin.
pub async fn require_user(State(state): State<WebState>, mut request: Request, next: Next) -> Response {
    let verdict = user(&state, request.headers());
    match verdict {
        Ok(caller) => {
            if request.method() == axum::http::Method::POST && !same_origin(request.headers()) {
                return (StatusCode::FORBIDDEN, "a form post from another site is refused").into_response();
            }
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(why) => {
            let wants_page = request.method() == axum::http::Method::GET
                && request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|a| a.contains("text/html"));
            if wants_page {
                let next = request.uri().path_and_query().map_or("/", |p| p.as_str());
                let target = format!("/login?next={}", super::input::url_encode(next));
                Redirect::to(&target).into_response()
            } else {
                let mut response = (StatusCode::UNAUTHORIZED, why).into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                response
            }
        }
    }
}

/// Whether a post's `Origin` (or, without one, its `Referer`) is this server's host. A post
/// with neither (curl, a script with a bearer header) is let through: no browser sends one
/// without them.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let from = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
    match from {
        None => true,
        Some(from) => {
            let rest = from.split_once("://").map_or(from, |(_, rest)| rest);
            rest.split('/').next() == Some(host)
        }
    }
}

/// Where to go after logging in: a local path only (never another site).
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && p.len() <= 512 => p,
        _ => "/",
    }
}

#[derive(serde::Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(Query(q): Query<NextQuery>) -> impl IntoResponse {
    login_page(local_path(q.next.as_deref()), None, StatusCode::OK)
}

fn login_page(next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        h1 { "Log in" }
        p { "This coordinator needs a token: a user or admin token from " code { "allsweep token create" } "." }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label for="token" { "Token" }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            button type="submit" { "Log in" }
        }
    };
    (status, layout("Log in", body)).into_response()
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Checks the token; sets the cookie and goes on, or shows the form again with why.
pub async fn login(State(state): State<WebState>, Form(form): Form<LoginForm>) -> Response {
    let next = local_path(form.next.as_deref()).to_string();
    let token = form.token.trim();
    if state.tokens.is_open() {
        return Redirect::to(&next).into_response();
    }
    // The token goes into a cookie: printable, without the characters a cookie cannot hold.
    let plausible = !token.is_empty()
        && token.len() <= 256
        && token.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'));
    let mut headers = HeaderMap::new();
    if plausible {
        headers.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().expect("a printable header value"));
    }
    if !plausible || user(&state, &headers).is_err() {
        tracing::warn!("dashboard login refused: unknown, revoked or worker token");
        return login_page(
            &next,
            Some("That token is unknown, revoked, or not a user token."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

pub async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_a_local_path() {
        assert_eq!(local_path(Some("/sweeps/sw-1?metric=dice")), "/sweeps/sw-1?metric=dice");
        for elsewhere in ["https://evil.example/", "//evil.example/", "/\\evil.example", "sweeps"] {
            assert_eq!(local_path(Some(elsewhere)), "/", "{elsewhere}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn a_cookie_or_a_header_presents_the_token() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "theme=dark; allsweep_token=asw_1".parse().expect("header"));
        assert_eq!(presented(&headers).as_deref(), Some("Bearer asw_1"));
        headers.insert(header::AUTHORIZATION, "Bearer asw_2".parse().expect("header"));
        assert_eq!(presented(&headers).as_deref(), Some("Bearer asw_2"), "the header wins");
    }

    #[test]
    fn posts_from_another_origin_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().expect("header"));
        assert!(same_origin(&headers), "no origin: not a browser");
        headers.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().expect("header"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "http://evil.example".parse().expect("header"));
        assert!(!same_origin(&headers));
    }
}
