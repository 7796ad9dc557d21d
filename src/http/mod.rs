//! The local HTTP API of the continuous service (axum on tokio), and the small client the
//! CLI uses to talk to a running service; it also serves the web UI's files (built into the
//! binary, see `build.rs`), which hold no data. Loopback only; every `/api/` route needs
//! the API token (`Authorization: Bearer`), compared in constant time; a `Host` that is
//! not the loopback name and port (DNS rebinding) and a state-changing request from a
//! foreign `Origin` are refused; no CORS. Errors are JSON `{"error": {code, message}}`.
//! Must not touch: sync logic (it calls [`crate::service::Service`]), terminal output.

use crate::api::ApiError;
use crate::service::Service;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    svc: Arc<Service>,
    token: Arc<str>,
    port: u16,
    /// Turns true when the server stops: event streams end so the shutdown is not held up.
    closing: tokio::sync::watch::Receiver<bool>,
    logins: Arc<LoginCodes>,
    /// A desktop app shows this service's UI in a window (`POST /api/window` reaches it).
    window: bool,
}

/// One-time login codes: a link `/login?code=...` (from `tandem run` or `tandem login-link`)
/// opens the web UI in a browser by setting the token as an HttpOnly, SameSite=Strict
/// cookie. A code works once, for ten minutes.
#[derive(Default)]
pub struct LoginCodes {
    codes: std::sync::Mutex<Vec<(String, std::time::Instant)>>,
}

const LOGIN_CODE_TTL: std::time::Duration = std::time::Duration::from_secs(600);
const COOKIE: &str = "tandem_token";

impl LoginCodes {
    pub fn issue(&self) -> Result<String, ApiError> {
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(|e| ApiError::Internal(format!("no random numbers for a login code: {e}")))?;
        let code: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut c = self.codes.lock().unwrap();
        c.retain(|(_, t)| t.elapsed() < LOGIN_CODE_TTL);
        c.push((code.clone(), std::time::Instant::now()));
        Ok(code)
    }

    fn redeem(&self, code: &str) -> bool {
        let mut c = self.codes.lock().unwrap();
        c.retain(|(_, t)| t.elapsed() < LOGIN_CODE_TTL);
        match c.iter().position(|(k, _)| ct_eq(k.as_bytes(), code.as_bytes())) {
            Some(i) => {
                c.remove(i);
                true
            }
            None => false,
        }
    }
}

/// Where a running service says how to reach it (next to the state file).
pub fn discovery_path(state: &Path) -> PathBuf {
    PathBuf::from(format!("{}.service.json", state.display()))
}

/// The API token file (next to the state file, owner-only).
pub fn token_path(state: &Path) -> PathBuf {
    PathBuf::from(format!("{}.api-token", state.display()))
}

/// Read the API token if there is one; never creates it (only a starting service does).
pub fn load_token(state: &Path) -> Result<Option<String>, ApiError> {
    let p = token_path(state);
    match std::fs::read_to_string(&p) {
        Ok(t) if t.trim().len() >= 32 => Ok(Some(t.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ApiError::Io { path: p, source }),
    }
}

/// Read the API token, or create it (32 random bytes, hex) with owner-only permissions.
pub fn load_or_create_token(state: &Path) -> Result<String, ApiError> {
    if let Some(t) = load_token(state)? {
        return Ok(t);
    }
    let p = token_path(state);
    let io = |source| ApiError::Io { path: p.clone(), source };
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| ApiError::Internal(format!("no random numbers for the API token: {e}")))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = PathBuf::from(format!("{}.tmp{}", p.display(), std::process::id()));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp).map_err(io)?;
    // Windows: an owner-only access list (this user, SYSTEM, the administrators) before the
    // token is written, instead of the one inherited from the folder.
    #[cfg(windows)]
    crate::side::win::make_private(&tmp).map_err(io)?;
    f.write_all(token.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &p).map_err(io)?;
    Ok(token)
}

/// Equal in time independent of where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error answer: `{"error": {"code", "message", "key"?}}`. `key` names the config key a
/// `config_invalid` error is about (as the file spells it, e.g. `pair[0].concurrency`), so a
/// form can put the message next to its field.
struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    key: Option<String>,
}

fn fail(status: StatusCode, code: &'static str, message: String) -> HttpError {
    HttpError {
        status,
        code,
        message,
        key: None,
    }
}

impl HttpError {
    fn body(&self) -> serde_json::Value {
        let mut e = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(k) = &self.key {
            e["key"] = k.as_str().into();
        }
        serde_json::json!({ "error": e })
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        let status = match &e {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Usage(_) | ApiError::Config(_) => StatusCode::BAD_REQUEST,
            ApiError::Locked { .. } => StatusCode::CONFLICT,
            ApiError::Remote { .. } if e.code() == "remote_config" => StatusCode::BAD_REQUEST,
            ApiError::Remote { .. } => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        fail(status, e.code(), e.to_string())
    }
}

fn allowed_hosts(port: u16) -> [String; 3] {
    [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")]
}

async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let hosts = allowed_hosts(st.port);
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !hosts.iter().any(|a| a.eq_ignore_ascii_case(host)) {
        return fail(
            StatusCode::FORBIDDEN,
            "bad_host",
            format!("Host {host:?} is not this service's loopback address"),
        )
        .into_response();
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Some(origin) = h.get(header::ORIGIN) {
            let o = origin.to_str().unwrap_or("");
            if !hosts.iter().any(|a| o.eq_ignore_ascii_case(&format!("http://{a}"))) {
                return fail(StatusCode::FORBIDDEN, "bad_origin", format!("requests from {o:?} are not accepted")).into_response();
            }
        }
    }
    if req.uri().path().starts_with("/api/") && !authorized(h, &st.token) {
        return fail(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong API token (see `tandem token`)".into(),
        )
        .into_response();
    }
    next.run(req).await
}

fn authorized(h: &HeaderMap, token: &str) -> bool {
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cookie = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')))
        .next();
    bearer.or(cookie).is_some_and(|b| ct_eq(b.as_bytes(), token.as_bytes()))
}

#[derive(Deserialize)]
struct LoginQuery {
    code: String,
    page: Option<String>,
}

/// Redeem a one-time login code: set the cookie, go to the UI. A used or expired code goes
/// to the sign-in page, which says so.
async fn login(State(st): State<AppState>, axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> Response {
    if !st.logins.redeem(&q.code) {
        // A browser followed it: the sign-in page says what happened (not a JSON error).
        tracing::info!("a used or expired login link was opened");
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/?login=expired")], "").into_response();
    }
    let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", st.token);
    // `page` opens one of the UI's pages (a plain word: never a URL elsewhere).
    let location = match q.page.as_deref() {
        Some(p) if !p.is_empty() && p.len() <= 32 && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') => format!("/#/{p}"),
        _ => "/".to_string(),
    };
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie.as_str()), (header::LOCATION, location.as_str())],
        "",
    )
        .into_response()
}

/// A fresh one-time login link (for `tandem login-link` and the tray's "Open Tandem").
async fn login_link(State(st): State<AppState>) -> Result<Response, HttpError> {
    let code = st.logins.issue()?;
    Ok(Json(serde_json::json!({"url": format!("http://127.0.0.1:{}/login?code={code}", st.port)})).into_response())
}

#[derive(Deserialize, Default)]
struct ResumeBody {
    #[serde(default)]
    allow_mass_delete: bool,
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"ok": true, "version": env!("CARGO_PKG_VERSION")}))
}

async fn status(State(st): State<AppState>) -> Result<Response, HttpError> {
    Ok(Json(st.svc.status()?).into_response())
}

/// `POST /api/stop`: stop the process hosting this service, gracefully (copies in flight
/// finish or roll back, the state is flushed). Answers before it stops.
async fn stop_host(State(st): State<AppState>) -> Json<serde_json::Value> {
    tracing::info!("stop requested through the API");
    st.svc.announce(crate::service::events::Event::StopRequested);
    Json(serde_json::json!({ "pid": std::process::id() }))
}

async fn pause_all(State(st): State<AppState>) -> Result<StatusCode, HttpError> {
    st.svc.pause(None)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resume_all(State(st): State<AppState>, body: Option<Json<ResumeBody>>) -> Result<StatusCode, HttpError> {
    st.svc.resume(None, body.map(|b| b.0).unwrap_or_default().allow_mass_delete)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn sync_all(State(st): State<AppState>) -> Result<StatusCode, HttpError> {
    st.svc.sync_now(None)?;
    Ok(StatusCode::ACCEPTED)
}

async fn pause_pair(State(st): State<AppState>, UrlPath(name): UrlPath<String>) -> Result<StatusCode, HttpError> {
    st.svc.pause(Some(&name))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resume_pair(
    State(st): State<AppState>,
    UrlPath(name): UrlPath<String>,
    body: Option<Json<ResumeBody>>,
) -> Result<StatusCode, HttpError> {
    st.svc
        .resume(Some(&name), body.map(|b| b.0).unwrap_or_default().allow_mass_delete)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn sync_pair(State(st): State<AppState>, UrlPath(name): UrlPath<String>) -> Result<StatusCode, HttpError> {
    st.svc.sync_now(Some(&name))?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, Default)]
struct WindowBody {
    /// A page of the UI ("conflicts", "settings"...), or none for the dashboard.
    page: Option<String>,
}

/// Show the desktop app's window (a second launch of the app asks the first this way).
async fn show_window(State(st): State<AppState>, body: axum::body::Bytes) -> Result<StatusCode, HttpError> {
    if !st.window {
        return Err(fail(
            StatusCode::CONFLICT,
            "no_window",
            format!(
                "this service runs headless (pid {}): open its web UI in a browser",
                std::process::id()
            ),
        ));
    }
    // The body is optional: none (or `{}`) shows the window as it is.
    let body: WindowBody = if body.iter().all(u8::is_ascii_whitespace) {
        WindowBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| fail(StatusCode::BAD_REQUEST, "usage", format!("POST /api/window: {e}")))?
    };
    let page = body.page.filter(|p| !p.is_empty());
    st.svc.announce(crate::service::events::Event::ShowWindow { page });
    Ok(StatusCode::NO_CONTENT)
}

async fn schedules(State(st): State<AppState>) -> Result<Response, HttpError> {
    Ok(Json(st.svc.schedules()?).into_response())
}

async fn schedule_pause(State(st): State<AppState>, UrlPath((pair, name)): UrlPath<(String, String)>) -> Result<StatusCode, HttpError> {
    st.svc.set_schedule_paused(&pair, &name, true)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn schedule_resume(State(st): State<AppState>, UrlPath((pair, name)): UrlPath<(String, String)>) -> Result<StatusCode, HttpError> {
    st.svc.set_schedule_paused(&pair, &name, false)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<u32>,
    offset: Option<u32>,
    pair: Option<String>,
    status: Option<String>,
    trigger: Option<String>,
    format: Option<String>,
    /// `hide_empty=true`: leave out runs that went well and changed nothing.
    hide_empty: Option<bool>,
    /// Started at or after / before (ns since the epoch).
    since: Option<i64>,
    until: Option<i64>,
    /// Runs with an action on a path containing this (any case).
    path: Option<String>,
}

/// Runs as JSON (default) or CSV (`?format=csv`), newest first; `limit`, `offset` and the
/// filters `pair`, `status`, `trigger`, `hide_empty`, `since`, `until` and `path`.
async fn history(State(st): State<AppState>, axum::extract::Query(q): axum::extract::Query<HistoryQuery>) -> Result<Response, HttpError> {
    let runs = st.svc.history(&crate::state::RunFilter {
        limit: Some(q.limit.unwrap_or(100).min(100_000)),
        offset: q.offset.unwrap_or(0),
        pair: q.pair.as_deref(),
        status: q.status.as_deref(),
        trigger: q.trigger.as_deref(),
        hide_empty: q.hide_empty.unwrap_or(false),
        since: q.since,
        until: q.until,
        path: q.path.as_deref().filter(|p| !p.is_empty()),
        ..Default::default()
    })?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(runs).into_response()),
        Some("csv") => Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], crate::api::runs_csv(&runs)).into_response()),
        Some(other) => Err(fail(
            StatusCode::BAD_REQUEST,
            "usage",
            format!("format={other}: expected json or csv"),
        )),
    }
}

/// The actions of one run, in order.
async fn run_journal(State(st): State<AppState>, UrlPath(run): UrlPath<i64>) -> Result<Response, HttpError> {
    Ok(Json(st.svc.run_journal(run)?).into_response())
}

#[derive(Deserialize)]
struct ConflictsQuery {
    pair: Option<String>,
}

async fn conflicts(
    State(st): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<ConflictsQuery>,
) -> Result<Response, HttpError> {
    let list: Vec<serde_json::Value> = st
        .svc
        .conflicts(q.pair.as_deref())?
        .into_iter()
        .map(|(pair, c)| serde_json::json!({"pair": pair, "conflict": c}))
        .collect();
    Ok(Json(list).into_response())
}

/// A path from a request: relative to the pair's roots, never leaving them.
fn rel_path(path: &str) -> Result<crate::model::RelPath, HttpError> {
    crate::model::RelPath::new(path).map_err(|e| fail(StatusCode::BAD_REQUEST, "bad_path", e.to_string()))
}

#[derive(Deserialize)]
struct Decision {
    path: String,
    keep: crate::engine::plan::Keep,
}

#[derive(Deserialize)]
struct Decisions {
    items: Vec<Decision>,
}

fn report_json(path: &str, r: Result<crate::api::SyncReport, ApiError>) -> serde_json::Value {
    match r {
        Ok(rep) => serde_json::json!({
            "path": path,
            "ok": rep.counts.failed == 0 && rep.fatal.is_none(),
            "run": rep.run_id,
            "counts": rep.counts,
        }),
        Err(e) => serde_json::json!({"path": path, "ok": false, "error": {"code": e.code(), "message": e.to_string()}}),
    }
}

async fn resolve(State(st): State<AppState>, UrlPath(pair): UrlPath<String>, Json(d): Json<Decision>) -> Result<Response, HttpError> {
    rel_path(&d.path)?;
    let svc = st.svc.clone();
    let r = tokio::task::spawn_blocking(move || svc.resolve(&pair, &d.path, d.keep).map(|rep| (d.path, rep)))
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    Ok(Json(report_json(&r.0, Ok(r.1))).into_response())
}

#[derive(Deserialize)]
struct ResyncBody {
    path: String,
    #[serde(default)]
    dry_run: bool,
}

/// `resync PATH` (relative to the pair, or absolute below a root): the base there is
/// forgotten and both sides decide again; through the pair's worker, between its runs.
async fn resync(State(st): State<AppState>, UrlPath(pair): UrlPath<String>, Json(d): Json<ResyncBody>) -> Result<Response, HttpError> {
    let svc = st.svc.clone();
    let cfg = st.svc.pair_config(&pair)?;
    let (path, dry_run) = (crate::api::resync_arg(std::slice::from_ref(&cfg), &d.path), d.dry_run);
    let rep = tokio::task::spawn_blocking(move || svc.resync(&pair, &path, dry_run))
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    let actions = serde_json::to_value(&rep.plan.actions).unwrap_or_default();
    let mut v = report_json(&d.path, Ok(rep));
    v["actions"] = actions;
    Ok(Json(v).into_response())
}

/// One choice for many conflicts; each is applied on its own and reported.
async fn resolve_batch(
    State(st): State<AppState>,
    UrlPath(pair): UrlPath<String>,
    Json(d): Json<Decisions>,
) -> Result<Response, HttpError> {
    for i in &d.items {
        rel_path(&i.path)?;
    }
    st.svc.pair_config(&pair)?;
    let svc = st.svc.clone();
    let out = tokio::task::spawn_blocking(move || {
        d.items
            .into_iter()
            .map(|i| report_json(&i.path, svc.resolve(&pair, &i.path, i.keep)))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
struct PathQuery {
    path: String,
    side: Option<crate::model::Side>,
}

/// Both sides of a conflict as they are now: size, time, hash, which is newer, text or not.
async fn conflict_detail(
    State(st): State<AppState>,
    UrlPath(pair): UrlPath<String>,
    axum::extract::Query(q): axum::extract::Query<PathQuery>,
) -> Result<Response, HttpError> {
    let rel = rel_path(&q.path)?;
    let record = st
        .svc
        .conflicts(Some(&pair))?
        .into_iter()
        .map(|x| x.1)
        .find(|c| c.path == rel.as_str());
    let sides = [
        st.svc.side(&pair, crate::model::Side::Left)?,
        st.svc.side(&pair, crate::model::Side::Right)?,
    ];
    let side = |fs: &dyn crate::side::Replica| -> serde_json::Value {
        // Nothing behind a symbolic link is described: it could lie outside the root.
        let e = match crate::side::stat_inside(fs, &rel) {
            Ok(Some(crate::side::Node::Entry(e))) if e.is_dir() => return serde_json::json!({"exists": true, "kind": "dir"}),
            Ok(Some(crate::side::Node::Entry(e))) => e,
            _ => return serde_json::json!({"exists": false}),
        };
        match crate::side::read_small(fs, &rel, 64 << 20) {
            Ok(Some((e, data))) => {
                let text = std::str::from_utf8(&data).is_ok() && !data.contains(&0);
                let hash = blake3::hash(&data).to_hex().to_string();
                serde_json::json!({"exists": true, "kind": "file", "size": e.size, "mtime": e.mtime, "hash": hash, "text": text})
            }
            // Too large to read here: what the listing says.
            Ok(None) => serde_json::json!({"exists": true, "kind": "file", "size": e.size, "mtime": e.mtime, "hash": null, "text": false}),
            Err(_) => serde_json::json!({"exists": false}),
        }
    };
    let (l, r) = (side(&*sides[0]), side(&*sides[1]));
    let newer = match (l["mtime"].as_i64(), r["mtime"].as_i64()) {
        (Some(a), Some(b)) if a > b => Some("left"),
        (Some(a), Some(b)) if b > a => Some("right"),
        _ => None,
    };
    Ok(
        Json(serde_json::json!({"pair": pair, "path": rel.as_str(), "record": record, "left": l, "right": r, "newer": newer}))
            .into_response(),
    )
}

/// A file's content (at most 16 MiB), for previews and text diffs. Served so a browser never
/// runs it: `nosniff`, a sandboxing CSP, images by their type, everything else as text.
async fn file_content(
    State(st): State<AppState>,
    UrlPath(pair): UrlPath<String>,
    axum::extract::Query(q): axum::extract::Query<PathQuery>,
) -> Result<Response, HttpError> {
    let rel = rel_path(&q.path)?;
    let Some(which) = q.side else {
        return Err(fail(StatusCode::BAD_REQUEST, "usage", "side=left or side=right is required".into()));
    };
    let fs = st.svc.side(&pair, which)?;
    let data = match crate::side::read_small(&*fs, &rel, 16 << 20) {
        Ok(Some((_, data))) => data,
        Ok(None) => match fs.stat(&rel) {
            Ok(None) => return Err(fail(StatusCode::NOT_FOUND, "not_found", format!("{rel}: no such file"))),
            _ => {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "usage",
                    format!("{rel}: not a file of at most 16 MiB inside the pair's folder"),
                ))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(StatusCode::NOT_FOUND, "not_found", format!("{rel}: no such file")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "bad_path",
                format!("{rel}: leads outside the pair's folder ({e})"),
            ))
        }
        Err(e) => {
            return Err(fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "io_error",
                format!("{}: {e}", fs.describe(&rel)),
            ))
        }
    };
    let ext = rel.name().rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let ctype = match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => "text/plain; charset=utf-8",
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'"),
        ],
        data,
    )
        .into_response())
}

/// The live event stream (Server-Sent Events): one `message` per engine event, its JSON
/// in `data` and its type as the SSE event name. A client that falls behind gets a
/// `lagged` event (with how many it missed) and should fetch the status again.
async fn events(State(st): State<AppState>) -> Response {
    use axum::response::sse::{Event as Sse, KeepAlive};
    let rx = st.svc.subscribe();
    let stream = futures_util::stream::unfold((rx, st.closing.clone()), |(mut rx, mut closing)| async move {
        if *closing.borrow() {
            return None;
        }
        let got = tokio::select! {
            got = rx.recv() => got,
            _ = closing.changed() => return None,
        };
        let ev = match got {
            Ok(e) => {
                let kind = serde_json::to_value(&e)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(String::from))
                    .unwrap_or_default();
                Sse::default().event(kind).json_data(&e).unwrap_or_default()
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Sse::default().event("lagged").data(n.to_string()),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(ev), (rx, closing)))
    });
    axum::response::sse::Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
}

async fn backlog(State(st): State<AppState>, UrlPath(pair): UrlPath<String>) -> Result<Response, HttpError> {
    Ok(Json(st.svc.backlog(&pair)?).into_response())
}

/// The actions a pair finished lately, newest first (the Backlog page's "Recently
/// finished"): state, bytes, and the error or reason where not done.
async fn recent(State(st): State<AppState>, UrlPath(pair): UrlPath<String>) -> Result<Response, HttpError> {
    Ok(Json(st.svc.recent(&pair, 100)?).into_response())
}

fn config_error(e: crate::config::ConfigError) -> HttpError {
    HttpError {
        status: StatusCode::BAD_REQUEST,
        code: "config_invalid",
        message: e.to_string(),
        key: e.key().map(String::from),
    }
}

fn config_file(st: &AppState) -> Result<PathBuf, HttpError> {
    st.svc.config().config_file.ok_or_else(|| {
        fail(
            StatusCode::NOT_FOUND,
            "no_config_file",
            "this service runs an ad-hoc pair (tandem run LEFT RIGHT): there is no config file to edit".into(),
        )
    })
}

/// The config file: its text, its values as written (`raw`) and what they mean (`config`).
async fn settings(State(st): State<AppState>) -> Result<Response, HttpError> {
    let file = config_file(&st)?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, "io_error", format!("{}: {e}", file.display())))?;
    let mut cfg = crate::config::Config::parse(&file, &text).map_err(config_error)?;
    // The state file in effect (the file may leave it to the default).
    cfg.state.get_or_insert_with(|| st.svc.config().state);
    // The values as the file spells them ("300ms", "10 MB"), for forms; `config` has what
    // they mean, defaults included.
    let raw: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(StatusCode::BAD_REQUEST, "config_invalid", e.to_string()))?;
    // `desktop_app`: whether the tray app hosts this service (its section means nothing headless).
    Ok(Json(serde_json::json!({"file": file, "text": text, "raw": raw, "config": cfg, "desktop_app": st.window})).into_response())
}

#[derive(Deserialize)]
struct SettingsChange {
    /// The whole new text, or
    text: Option<String>,
    /// edits to the current text (dotted key -> value; null removes), comments kept.
    edits: Option<Vec<SettingsEdit>>,
}

#[derive(Deserialize)]
struct SettingsEdit {
    key: String,
    value: serde_json::Value,
}

fn new_text(file: &Path, change: &SettingsChange) -> Result<String, HttpError> {
    match (&change.text, &change.edits) {
        (Some(t), None) => {
            crate::config::Config::parse(file, t).map_err(config_error)?;
            Ok(t.clone())
        }
        (None, Some(edits)) => {
            let current = std::fs::read_to_string(file)
                .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, "io_error", format!("{}: {e}", file.display())))?;
            let edits: Vec<(String, serde_json::Value)> = edits.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
            crate::config::edit_text(file, &current, &edits).map_err(config_error)
        }
        _ => Err(fail(StatusCode::BAD_REQUEST, "usage", "send either \"text\" or \"edits\"".into())),
    }
}

/// Check settings without saving: `{"ok": true, "warnings": [{key, message}]}` or the
/// error with its key.
async fn settings_validate(State(st): State<AppState>, Json(change): Json<SettingsChange>) -> Result<Response, HttpError> {
    let file = config_file(&st)?;
    match new_text(&file, &change) {
        Ok(text) => {
            // Allowed but probably not meant (a missing, relative or overlapping folder):
            // warnings beside their fields. The folders are looked at: off the async threads.
            let warnings = tokio::task::spawn_blocking(move || match crate::config::Config::parse(&file, &text) {
                Ok(cfg) => crate::api::config_warnings(&cfg, &text),
                Err(_) => Vec::new(),
            })
            .await
            .unwrap_or_default();
            Ok(Json(serde_json::json!({"ok": true, "warnings": warnings})).into_response())
        }
        Err(e) => {
            let mut body = e.body();
            body["ok"] = false.into();
            Ok(Json(body).into_response())
        }
    }
}

/// Settings' "Send a test mail": the mail settings as saved, with the form's edits if any
/// (the same body as validate), send one short mail now. `{"ok": true, "to": [...]}`, or
/// `mail_failed` with what failed (settings, connection, the server's answer).
async fn test_mail(State(st): State<AppState>, Json(change): Json<SettingsChange>) -> Result<Response, HttpError> {
    let file = config_file(&st)?;
    let text = new_text(&file, &change)?;
    let cfg = crate::config::Config::parse(&file, &text).map_err(config_error)?;
    let Some(email) = cfg.email else {
        return Err(HttpError {
            status: StatusCode::BAD_REQUEST,
            code: "usage",
            message: "no mail settings yet: fill in the SMTP server, the sender and a recipient".into(),
            key: Some("email.smtp_server".into()),
        });
    };
    let to = email.to.clone();
    let sent = tokio::task::spawn_blocking(move || crate::mail::send_test(&email))
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match sent {
        Ok(()) => Ok(Json(serde_json::json!({"ok": true, "to": to})).into_response()),
        Err(message) => Err(fail(StatusCode::BAD_GATEWAY, "mail_failed", message)),
    }
}

#[derive(Deserialize)]
struct TestConnection {
    location: String,
    #[serde(default)]
    remote: crate::side::remote::RemoteOptions,
}

/// Settings' "Test connection": open a location as a pair would and report the probed
/// capabilities, or the error (`remote_config`, `remote_unreachable`) naming the place.
async fn test_connection(Json(t): Json<TestConnection>) -> Result<Response, HttpError> {
    let location = PathBuf::from(t.location.trim());
    if location.as_os_str().is_empty() {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "usage",
            "location: a folder or a URL is required".into(),
        ));
    }
    let rep = tokio::task::spawn_blocking(move || crate::api::test_location(&location, &t.remote))
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    Ok(Json(rep).into_response())
}

/// Save settings (validated, written atomically, comments kept with `edits`) and apply
/// them at once: the pairs restart with the new configuration.
async fn settings_save(State(st): State<AppState>, Json(change): Json<SettingsChange>) -> Result<Response, HttpError> {
    let file = config_file(&st)?;
    let text = new_text(&file, &change)?;
    let current = st.svc.config();
    let parsed = crate::config::Config::parse(&file, &text).map_err(config_error)?;
    if parsed.state.as_ref().is_some_and(|s| *s != current.state) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "config_invalid",
            "state: the state file can only change with a restart of the service".into(),
        ));
    }
    crate::config::write_atomic(&file, &text).map_err(config_error)?;
    let new = crate::service::ServiceConfig {
        pairs: parsed.pairs,
        state: current.state.clone(),
        email: parsed.email,
        config_file: Some(file),
        desktop: parsed.desktop,
    };
    let svc = st.svc.clone();
    tokio::task::spawn_blocking(move || svc.reconfigure(new))
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    Ok(Json(serde_json::json!({"ok": true, "text": text})).into_response())
}

mod ui {
    include!(concat!(env!("OUT_DIR"), "/ui_files.rs"));
}

/// The web UI's files (built into the binary). They hold no data, so they need no token:
/// the page signs in with the cookie a login link set, or with a pasted token. Anything
/// not under `/api/` that is not a file is the single-page app (`index.html`). A browser
/// that accepts gzip gets the compressed copy the UI build made beside each text file.
async fn static_file(uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") {
        return fail(StatusCode::NOT_FOUND, "not_found", format!("no such route: {path}")).into_response();
    }
    let file = ui::UI_FILES
        .iter()
        .find(|(p, _)| *p == path)
        .or_else(|| ui::UI_FILES.iter().find(|(p, _)| *p == "/index.html"));
    let Some((name, data)) = file else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "The web UI is not part of this build: run `npm ci && npm run build`, then build tandem again. The API works without it.\n",
        )
            .into_response();
    };
    let ctype = match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    };
    // Hashed asset names never change; the page itself is always asked for again.
    let cache = if name.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let gzip_ok = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.split(';').next().unwrap_or("").trim() == "gzip"));
    let gz = format!("{name}.gz");
    let (data, encoding) = match ui::UI_FILES.iter().find(|(p, _)| *p == gz) {
        Some((_, z)) if gzip_ok => (*z, Some("gzip")),
        _ => (*data, None),
    };
    let mut res = (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
            ),
            (header::VARY, "Accept-Encoding"),
        ],
        data,
    )
        .into_response();
    if let Some(e) = encoding {
        res.headers_mut()
            .insert(header::CONTENT_ENCODING, header::HeaderValue::from_static(e));
    }
    res
}

fn router(
    svc: Arc<Service>,
    token: String,
    port: u16,
    closing: tokio::sync::watch::Receiver<bool>,
    logins: Arc<LoginCodes>,
    window: bool,
) -> Router {
    let st = AppState {
        svc,
        token: token.into(),
        port,
        closing,
        logins,
        window,
    };
    Router::new()
        .route("/health", get(health))
        .route("/login", get(login))
        .route("/api/login-link", post(login_link))
        .route("/api/status", get(status))
        .route("/api/stop", post(stop_host))
        .route("/api/pause", post(pause_all))
        .route("/api/resume", post(resume_all))
        .route("/api/sync", post(sync_all))
        .route("/api/pairs/{name}/pause", post(pause_pair))
        .route("/api/pairs/{name}/resume", post(resume_pair))
        .route("/api/pairs/{name}/sync", post(sync_pair))
        .route("/api/schedules", get(schedules))
        .route("/api/pairs/{pair}/schedules/{name}/pause", post(schedule_pause))
        .route("/api/pairs/{pair}/schedules/{name}/resume", post(schedule_resume))
        .route("/api/history", get(history))
        .route("/api/history/{run}", get(run_journal))
        .route("/api/events", get(events))
        .route("/api/settings", get(settings).put(settings_save).patch(settings_save))
        .route("/api/settings/validate", post(settings_validate))
        .route("/api/test-connection", post(test_connection))
        .route("/api/test-mail", post(test_mail))
        .route("/api/conflicts", get(conflicts))
        .route("/api/pairs/{pair}/backlog", get(backlog))
        .route("/api/pairs/{pair}/recent", get(recent))
        .route("/api/pairs/{pair}/conflicts/detail", get(conflict_detail))
        .route("/api/pairs/{pair}/conflicts/resolve", post(resolve))
        .route("/api/pairs/{pair}/resync", post(resync))
        .route("/api/pairs/{pair}/conflicts/resolve-batch", post(resolve_batch))
        .route("/api/pairs/{pair}/file", get(file_content))
        .route("/api/window", post(show_window))
        .fallback(static_file)
        .layer(axum::middleware::from_fn_with_state(st.clone(), guard))
        .with_state(st)
}

/// Serve until `shutdown` completes.
async fn serve(
    listener: tokio::net::TcpListener,
    svc: Arc<Service>,
    token: String,
    logins: Arc<LoginCodes>,
    window: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    axum::serve(listener, router(svc, token, port, rx, logins, window))
        .with_graceful_shutdown(stop)
        .await
}

// ------------------------------------------------------------------ client

/// A running service, as its discovery file describes it.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Discovery {
    pub pid: u32,
    pub url: String,
}

pub fn write_discovery(state: &Path, d: &Discovery) -> std::io::Result<()> {
    let p = discovery_path(state);
    let tmp = PathBuf::from(format!("{}.tmp{}", p.display(), std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(d).expect("serializes"))?;
    std::fs::rename(tmp, p)
}

/// Wait until the service `pid` of this state file has stopped (its discovery file is gone,
/// or names another process), at most `timeout`. False: still stopping.
pub fn wait_stopped(state: &Path, pid: u32, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let running = std::fs::read_to_string(discovery_path(state))
            .ok()
            .and_then(|t| serde_json::from_str::<Discovery>(&t).ok())
            .is_some_and(|d| d.pid == pid);
        if !running {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// One request to the service of this state file: (HTTP status, body). `Ok(None)`: no
/// service is running for it.
pub fn call(state: &Path, method: &str, path: &str, body: Option<&str>) -> Result<Option<(u16, String)>, ApiError> {
    let Ok(text) = std::fs::read_to_string(discovery_path(state)) else {
        return Ok(None);
    };
    let Ok(d) = serde_json::from_str::<Discovery>(&text) else {
        return Ok(None);
    };
    let Some(hostport) = d.url.strip_prefix("http://").map(|s| s.trim_end_matches('/').to_string()) else {
        return Ok(None);
    };
    // A running service made the token before its discovery file; a client never makes one.
    let Some(token) = load_token(state)? else {
        return Ok(None);
    };
    let Ok(mut s) = std::net::TcpStream::connect(&hostport) else {
        return Ok(None);
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let io = |source| ApiError::Io {
        path: PathBuf::from(&d.url),
        source,
    };
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(io)?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Ok(Some((code, body)))
}

/// The API token of the service running for this state file, for scripts: its discovery
/// file is there and the service answers a request made with the token. `Ok(None)`: no
/// service runs for it (no token is created).
pub fn service_token(state: &Path) -> Result<Option<String>, ApiError> {
    match call(state, "GET", "/api/status", None)? {
        None => Ok(None),
        Some((200, _)) => load_token(state),
        Some((code, body)) => Err(ApiError::Internal(format!(
            "the service running for {} refused its token file {} ({code}: {})",
            state.display(),
            token_path(state).display(),
            body.trim()
        ))),
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// How a [`Host`] runs its service.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// Where the API and web UI listen (loopback only; port 0 picks a free one).
    pub listen: std::net::SocketAddr,
    /// A desktop app shows the UI in a window: a second launch asks this one to show it
    /// (`POST /api/window`) instead of starting a second service.
    pub window: bool,
}

/// A running service with its API server: the one way `tandem run` and the desktop app
/// start the engine. The server runs on its own runtime thread; the discovery file next to
/// the state file tells `tandem status`, `tandem pause`... and a second desktop launch
/// where it is. [`Host::stop`] stops both gracefully.
pub struct Host {
    svc: Arc<Service>,
    url: String,
    logins: Arc<LoginCodes>,
    state: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Host {
    pub fn start(cfg: crate::service::ServiceConfig, opts: &HostOptions) -> Result<Host, ApiError> {
        let listen = opts.listen;
        if !listen.ip().is_loopback() {
            return Err(ApiError::Usage(format!(
                "--listen {listen}: the API listens on loopback addresses only"
            )));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tandem-api")
            .enable_all()
            .build()
            .map_err(|e| ApiError::Internal(format!("cannot start the async runtime: {e}")))?;
        let state = cfg.state.clone();
        let token = load_or_create_token(&state)?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(listen))
            .map_err(|e| ApiError::Usage(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr().map_err(|e| ApiError::Internal(e.to_string()))?;
        let svc = Arc::new(Service::start(cfg)?);
        let url = format!("http://{addr}");
        if let Err(source) = write_discovery(
            &state,
            &Discovery {
                pid: std::process::id(),
                url: url.clone(),
            },
        ) {
            svc.shutdown();
            return Err(ApiError::Io {
                path: discovery_path(&state),
                source,
            });
        }
        let logins = Arc::new(LoginCodes::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (svc2, logins2, window) = (svc.clone(), logins.clone(), opts.window);
        let server = std::thread::Builder::new()
            .name("tandem-api".into())
            .spawn(move || {
                rt.block_on(serve(listener, svc2, token, logins2, window, async {
                    let _ = stopped.await;
                }))
            })
            .map_err(|e| ApiError::Internal(format!("cannot start the API thread: {e}")))?;
        Ok(Host {
            svc,
            url,
            logins,
            state,
            stop: Some(stop),
            server: Some(server),
        })
    }

    pub fn service(&self) -> &Arc<Service> {
        &self.svc
    }

    /// The API's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A one-time link that signs a browser (or the app's window) in to the web UI.
    pub fn login_link(&self) -> Result<String, ApiError> {
        Ok(format!("{}/login?code={}", self.url, self.logins.issue()?))
    }

    /// A one-time link that signs in and opens a page of the UI ("settings", "conflicts").
    pub fn login_link_to(&self, page: &str) -> Result<String, ApiError> {
        Ok(format!("{}&page={page}", self.login_link()?))
    }

    /// Stop the API server, then the service (copies in progress roll back, the locks go).
    pub fn stop(mut self) -> Result<(), ApiError> {
        self.halt()
    }

    fn halt(&mut self) -> Result<(), ApiError> {
        let Some(stop) = self.stop.take() else { return Ok(()) };
        let _ = stop.send(());
        let served = self.server.take().map(|t| t.join());
        self.svc.shutdown();
        // Last: `tandem stop` waits for the discovery file to go.
        let _ = std::fs::remove_file(discovery_path(&self.state));
        match served {
            Some(Ok(Err(e))) => Err(ApiError::Internal(format!("API server: {e}"))),
            Some(Err(_)) => Err(ApiError::Internal("the API server thread panicked".into())),
            _ => Ok(()),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// Run the service in the foreground with its API on `listen` until SIGINT/SIGTERM (Ctrl-C,
/// Ctrl-Break or closing the console on Windows) or `tandem stop`, then stop gracefully.
/// `ready` gets the API's URL and a one-time login link for the web UI once it listens.
pub fn run_foreground(
    cfg: crate::service::ServiceConfig,
    listen: std::net::SocketAddr,
    ready: impl FnOnce(&str, &str),
) -> Result<(), ApiError> {
    run_until(
        cfg,
        listen,
        |host| {
            ready(host.url(), &host.login_link()?);
            Ok(())
        },
        stop_signal(),
    )
}

/// The headless service until `stop` completes (a signal, the Windows service manager's
/// stop request) or `tandem stop` asks; `ready` gets the host once it listens.
pub fn run_until(
    cfg: crate::service::ServiceConfig,
    listen: std::net::SocketAddr,
    ready: impl FnOnce(&Host) -> Result<(), ApiError>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ApiError> {
    let host = Host::start(cfg, &HostOptions { listen, window: false })?;
    let mut events = host.service().subscribe();
    ready(&host)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ApiError::Internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let requested = async {
            loop {
                match events.recv().await {
                    Ok(crate::service::events::Event::StopRequested) | Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    _ => {}
                }
            }
        };
        tokio::select! {
            _ = stop => {},
            _ = requested => {},
        }
    });
    tracing::info!("stop requested");
    host.stop()
}

/// SIGINT or SIGTERM; on Windows Ctrl-C, Ctrl-Break, or the console closing (or the user
/// logging off, the machine shutting down).
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows;
        let (mut brk, mut close, mut shutdown) = (
            windows::ctrl_break().expect("Ctrl-Break handler"),
            windows::ctrl_close().expect("console close handler"),
            windows::ctrl_shutdown().expect("shutdown handler"),
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = brk.recv() => {},
            _ = close.recv() => {},
            _ = shutdown.recv() => {},
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }

    #[test]
    fn dechunk_joins_chunks() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
    }

    #[test]
    fn the_api_token_file_is_created_owner_only_and_loaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        assert_eq!(load_token(&state).unwrap(), None);
        let token = load_or_create_token(&state).unwrap();
        assert_eq!(token.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(token_path(&state)).unwrap().permissions().mode() & 0o777, 0o600);
        }
        #[cfg(windows)]
        crate::side::win::check_private(&token_path(&state)).unwrap();
        assert_eq!(load_token(&state).unwrap().as_deref(), Some(token.as_str()));
        assert_eq!(load_or_create_token(&state).unwrap(), token);
    }
}
