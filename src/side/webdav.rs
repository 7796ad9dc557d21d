//! The WebDAV side: a folder on a WebDAV server (Nextcloud, ownCloud, Apache mod_dav, wsgidav,
//! `rclone serve webdav`...). [`WebDavSide::connect`] opens it from a [`WebDavConfig`] (the
//! composition roots build that from the configuration; nothing else names this side).
//!
//! How WebDAV is mapped onto a [`Replica`]:
//! - Paths: a [`RelPath`] `a/b` is the URL `ENDPOINT/a/b` (each component percent-encoded);
//!   [`Replica::describe`] names it by that URL, unencoded, never with credentials. Nothing
//!   outside the endpoint's folder is ever named: every URL is the base plus a validated
//!   [`RelPath`], and hrefs a server sends back outside the base are ignored.
//! - Metadata (PROPFIND of `resourcetype`, `getcontentlength`, `getlastmodified`,
//!   `getetag`): size, mtime = `getlastmodified` (an HTTP date: whole seconds), version = the
//!   ETag folded to 64 bits, no mode, no id. Folders are all zero (as on S3), so a stat and a
//!   listing always agree. A stat and a listing parse the same XML the same way.
//! - Listings: `PROPFIND Depth: infinity` where the server allows it (found out on the first
//!   listing; many servers refuse it with 403), else `Depth: 1`. An infinite listing of a
//!   folder answers its subfolders' listings too: they are kept for a short while and each
//!   is handed out once (a scan walks the tree right after), and any change made through this
//!   side drops them, so a listing is never older than the scan that asked for it.
//! - Uploads are Tandem's own streamed `PUT`s (OpenDAL's WebDAV writer holds whole files in
//!   memory): a file of at most [`SMALL`] bytes goes up in one `PUT` with `If-None-Match: *`
//!   (retried like any request); a larger one first claims its name with an empty `PUT`
//!   `If-None-Match: *`, then streams its body (chunked, through a small queue: never the
//!   whole file in memory) in a `PUT` with `If-Match: <the claim's ETag>`. Every upload is
//!   checked afterwards (a PROPFIND: the size, and the ETag the `PUT` answered): a version
//!   written by someone else during the upload is reported as an error (the engine plans
//!   again), never taken for ours. A writer dropped unfinished aborts its `PUT` and removes
//!   what it claimed. `create_new` needs no temporary name of its own: the engine writes to
//!   a fresh temporary name and renames it into place.
//! - Renames are `MOVE`, server-side copies (`keep_copy`) `COPY`; both send `Overwrite: F`
//!   whenever the target is free (the server then refuses to replace something that appeared
//!   meanwhile) and `Overwrite: T` only over a file just checked. `DELETE` of a folder
//!   removes everything below it on every server, so `remove_dir` lists first and refuses a
//!   folder that is not empty; `remove_file` checks it is a file and, where the server
//!   enforces conditions, deletes `If-Match` its ETag. Missing parents are never created
//!   implicitly (OpenDAL's MOVE/COPY would, and would overwrite: they are Tandem's own
//!   requests for that reason, as are PROPFIND, MKCOL, DELETE and PROPPATCH); reads are
//!   OpenDAL's (a streamed GET, retried, with time limits).
//! - Errors name the URL and map HTTP statuses to `io::ErrorKind`s (401/403 access denied,
//!   404/409 not found, 412 exists or changed, 507 storage full). Temporary failures
//!   (timeouts, dropped connections, 429, 5xx) are retried with exponential backoff and
//!   jitter, honouring `Retry-After`; a 4xx that cannot succeed is not retried. Every request
//!   has a time limit; a streamed upload that stalls fails.
//!
//! Capabilities are probed at connect, not trusted from the server's name: in the base
//! folder, a temporary file (a Tandem temp name, `.tandem-probe-PID-N-R.tmp`, removed
//! afterwards whatever happens) is written, and the side records: whether a second `PUT`
//! `If-None-Match: *` and a `PUT` `If-Match` a wrong ETag are refused with 412 (conditional
//! writes enforced: wsgidav, Nextcloud; `rclone serve webdav` ignores them, and there the
//! checks before and after each upload are the only guard, with a short race left); whether
//! mtimes can be set (a PROPPATCH of `lastmodified` (Nextcloud, rclone) or of
//! `Win32LastModifiedTime` (IIS, some others) or of `getlastmodified` (protected by the
//! RFC, taken by a few), checked by reading the time back; where
//! that works and an `X-OC-Mtime` header on a `PUT` sets the time too (Nextcloud, rclone), a
//! small file's `PUT` carries it, one request less; a streamed file's mtime is known only at
//! `finish`, after its body, so it is always PROPPATCHed); whether names are
//! case-insensitive (the probe found under its upper-case name); whether MOVE works (it
//! must); whether the server gives ETags (the version token) and whether a `PUT`'s ETag
//! is the one a PROPFIND shows (else uploads are checked by size only). [`Replica::note`]
//! says what was found. Caps: case sensitivity and `set_mtime` as probed, one-second mtimes,
//! no modes, no ids, the ETag as version token (when there are ETags), no free hash, no
//! atomic replace (MOVE with `Overwrite: T` deletes the target first on common servers: the
//! engine moves the old version aside instead), old versions kept by a server-side COPY, no
//! flush (a `PUT` is committed when the server answers), costly listings, no change feed
//! (the service polls).
//!
//! The [`Replica`] trait is synchronous: every call runs on the runtime the S3 side owns
//! (`s3::run`: one small runtime for all cloud sides, as OpenDAL's HTTP transport is
//! process-wide) and is waited for on a standard channel, which works from any thread.
//!
//! Must not touch: anything outside the endpoint's folder, the password in any message, log
//! or `Debug` output (Basic authentication only goes into request headers).

use super::s3::{err_text, install_transport, io_kind, run, scrub_secret, StreamReader};
use super::{Caps, ChangeSource, DirItem, FileWriter, KeepVersion, Node, Replica, VersionToken};
use crate::model::{Entry, Kind, RelPath};
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::options::ReaderOptions;
use opendal::Operator;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A file of at most this size goes up in one `PUT` (held in memory, retried); a larger one
/// is streamed.
pub const SMALL: usize = 1024 * 1024;

/// Bytes handed to a streamed upload's body at once.
const CHUNK: usize = 256 * 1024;

/// Chunks a streamed upload's queue holds (what a writer may be ahead of the network).
const QUEUE: usize = 4;

/// Retries of a request after the first attempt.
const RETRIES: u32 = 4;

/// Time limit of a request without a streamed body (one attempt).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Time limit of an infinite-depth listing (a large tree is one long answer).
const LISTING_TIMEOUT: Duration = Duration::from_secs(600);

/// A streamed upload fails when the server takes no data for this long, or does not answer
/// this long after the last byte.
const STALL: Duration = Duration::from_secs(180);

/// How long the subfolder listings an infinite-depth PROPFIND brought stay usable.
const PREFETCH_TTL: Duration = Duration::from_secs(30);

/// The longest `Retry-After` honoured (a longer one is cut to this).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The mtime the probe sends in `X-OC-Mtime` and the one it sets through PROPPATCH (seconds).
const PROBE_OC_MTIME: i64 = 1_234_567_890;
const PROBE_SET_MTIME: i64 = 1_000_000_000;

const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>"#;

/// What [`WebDavSide::connect`] needs. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct WebDavConfig {
    /// `http(s)://host:port/base/path`: the folder the side lives in (it must exist).
    pub endpoint: String,
    /// `""`: no authentication.
    pub user: String,
    pub password: String,
}

impl fmt::Debug for WebDavConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavConfig")
            .field("endpoint", &self.endpoint)
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

/// A folder on a WebDAV server.
pub struct WebDavSide {
    inner: Arc<Inner>,
}

impl fmt::Debug for WebDavSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavSide").field("location", &self.inner.location()).finish()
    }
}

/// How modification times can be set on this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum MtimeVia {
    #[default]
    None,
    /// PROPPATCH `{DAV:}lastmodified` = Unix seconds (Nextcloud, ownCloud, rclone).
    DavLastModified,
    /// PROPPATCH `{urn:schemas-microsoft-com:}Win32LastModifiedTime` = an HTTP date.
    Win32,
    /// PROPPATCH `{DAV:}getlastmodified` = an HTTP date (a protected property for RFC 4918,
    /// but some servers take it).
    GetLastModified,
}

/// What the probes at connect found.
#[derive(Clone, Copy, Debug, Default)]
struct Probes {
    /// `If-None-Match: *` and `If-Match` are answered with 412 when they do not hold.
    conditional: bool,
    set_mtime: MtimeVia,
    /// `X-OC-Mtime` on a `PUT` sets the mtime (reported only).
    x_oc_mtime: bool,
    case_insensitive: bool,
    /// The server gives ETags.
    etags: bool,
    /// Its ETags are folded from the mtime and size: two files of the same size written in
    /// the same second get the same one (wsgidav; `rclone serve webdav` without
    /// `--etag-hash`).
    weak_etags: bool,
    /// A `PUT`'s `ETag` header is the ETag a PROPFIND then shows.
    put_etag_matches: bool,
    /// The same for a `PUT` with `X-OC-Mtime` (rclone answers with the ETag from before it
    /// set the time).
    oc_etag_matches: bool,
}

const DEPTH_UNKNOWN: u8 = 0;
const DEPTH_INFINITY: u8 = 1;
const DEPTH_ONE: u8 = 2;

/// What the async parts need; shared with tasks and writers.
struct Inner {
    client: reqwest::Client,
    /// For streamed reads.
    op: Operator,
    /// `scheme://host:port`, no credentials, no slash at the end.
    origin: String,
    /// The base folder's path as the endpoint spells it (URL form), with a slash at either end.
    base_raw: String,
    /// The same, percent-decoded (hrefs are compared with it).
    base_decoded: String,
    user: String,
    password: String,
    probes: OnceLock<Probes>,
    depth: AtomicU8,
    /// Bumped by every change made through this side: prefetched listings older than it are
    /// dropped.
    generation: AtomicU64,
    prefetched: Mutex<HashMap<String, Prefetched>>,
}

/// A folder's listing an infinite-depth PROPFIND brought: when, at which
/// [`Inner::generation`], and its items.
type Prefetched = (Instant, u64, Vec<DavItem>);

/// One `response` of a multistatus answer.
#[derive(Clone, Debug, Default, PartialEq)]
struct DavItem {
    href: String,
    dir: bool,
    size: u64,
    /// Seconds since the epoch.
    mtime: Option<i64>,
    etag: Option<String>,
}

/// An answer to one of Tandem's own requests (the body read whole: never a file's content).
struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    /// An earlier attempt may have reached the server (a timeout, a dropped connection, a
    /// 5xx): a non-idempotent request's answer must be read with that in mind.
    retried: bool,
}

impl Resp {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string())
    }
}

/// One of Tandem's own requests, built again for each attempt.
struct Req {
    method: reqwest::Method,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

impl Req {
    fn new(method: &str, url: String) -> Req {
        Req {
            method: reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method name"),
            url,
            headers: Vec::new(),
            body: None,
            timeout: REQUEST_TIMEOUT,
        }
    }
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Req {
        self.headers.push((k, v.into()));
        self
    }
    fn body(mut self, b: impl Into<Vec<u8>>) -> Req {
        self.body = Some(b.into());
        self
    }
}

// ---------------------------------------------------------------------------------- URLs

/// Split an endpoint into `scheme://authority` and the base path (with a slash at either
/// end). Credentials in the URL are refused (they belong in the config's fields), and the
/// message then shows the URL without them.
fn parse_endpoint(endpoint: &str) -> io::Result<(String, String)> {
    let bad = |why: &str, shown: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("WebDAV endpoint {shown}: {why}"));
    let ep = endpoint.trim();
    let Some((scheme, rest)) = ep.split_once("://") else {
        return Err(bad("not an http:// or https:// URL", ep));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad("not an http:// or https:// URL", ep));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if let Some((_, host)) = authority.rsplit_once('@') {
        let shown = format!("{scheme}://{host}{path}");
        return Err(bad("put the user name and password in their own settings, not in the URL", &shown));
    }
    if authority.is_empty() {
        return Err(bad("no host", ep));
    }
    if path.contains('?') || path.contains('#') {
        return Err(bad("a query or fragment is not allowed", ep));
    }
    let decoded = String::from_utf8_lossy(&percent_decode(path)).into_owned();
    if decoded.split('/').any(|c| c == "." || c == "..") {
        return Err(bad("'.' and '..' components are not allowed", ep));
    }
    let mut base = format!("/{}", path.trim_matches('/'));
    if !base.ends_with('/') {
        base.push('/');
    }
    Ok((format!("{scheme}://{authority}"), base))
}

/// Percent-encode a relative path (slashes kept): everything but RFC 3986's unreserved
/// characters.
fn encode_path(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn percent_decode(s: &str) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------- XML

/// The local name of an XML tag (`D:href`, `ns0:href`, `href` -> `href`).
fn local_name(tag: &str) -> &str {
    let name = tag.split(|c: char| c.is_whitespace()).next().unwrap_or("");
    name.rsplit(':').next().unwrap_or(name)
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let ent = &rest[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") || ent.starts_with("#X") => u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32),
            _ if ent.starts_with('#') => ent[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `HTTP/1.1 200 OK` -> 200.
fn status_code(s: &str) -> Option<u16> {
    s.split_whitespace().nth(1)?.parse().ok()
}

/// An HTTP date (RFC 1123; RFC 3339 accepted too) as seconds since the epoch.
fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    chrono::DateTime::parse_from_rfc2822(s)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.timestamp())
}

fn http_date(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// A multistatus answer: its responses (those with a success status and an href) and
/// whether any propstat or response said something else.
#[derive(Debug, Default)]
struct Multistatus {
    items: Vec<DavItem>,
    any_failed: bool,
}

/// A small, tolerant reader of WebDAV multistatus XML: elements are matched by local name
/// (servers use any namespace prefix), text is entity-decoded, comments, CDATA and
/// processing instructions are handled. It reads only what Tandem asks for.
fn parse_multistatus(xml: &str) -> Result<Multistatus, String> {
    let mut out = Multistatus::default();
    let mut stack: Vec<String> = Vec::new();
    let mut cur: Option<DavItem> = None;
    let mut resp_status: Option<u16> = None;
    // Inside a propstat: what it says and its status.
    let mut ps: Option<(DavItem, Option<u16>)> = None;
    let mut text = String::new();
    let mut seen_root = false;
    let b = xml.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            let next = xml[i..].find('<').map(|j| i + j).unwrap_or(b.len());
            text.push_str(&decode_entities(&xml[i..next]));
            i = next;
            continue;
        }
        let rest = &xml[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map(|j| j + 3).ok_or("unterminated comment")?;
            continue;
        }
        if let Some(body) = rest.strip_prefix("<![CDATA[") {
            let end = body.find("]]>").ok_or("unterminated CDATA")?;
            text.push_str(&body[..end]);
            i += 9 + end + 3;
            continue;
        }
        if rest.starts_with("<?") {
            i += rest.find("?>").map(|j| j + 2).ok_or("unterminated processing instruction")?;
            continue;
        }
        if rest.starts_with("<!") {
            i += rest.find('>').map(|j| j + 1).ok_or("unterminated declaration")?;
            continue;
        }
        // The end of the tag, skipping quoted attribute values.
        let mut j = i + 1;
        let mut quote = 0u8;
        while j < b.len() {
            match b[j] {
                q @ (b'"' | b'\'') if quote == 0 => quote = q,
                q if q == quote => quote = 0,
                b'>' if quote == 0 => break,
                _ => {}
            }
            j += 1;
        }
        if j >= b.len() {
            return Err("unterminated tag".into());
        }
        let tag = &xml[i + 1..j];
        i = j + 1;
        if let Some(name) = tag.strip_prefix('/') {
            let name = local_name(name.trim()).to_string();
            end_element(&name, &text, &mut cur, &mut resp_status, &mut ps, &mut out);
            stack.pop();
        } else {
            let self_closing = tag.ends_with('/');
            let name = local_name(tag.trim_end_matches('/').trim()).to_string();
            if !seen_root {
                seen_root = true;
                if name != "multistatus" {
                    return Err(format!("expected a multistatus answer, got <{name}>"));
                }
            }
            match name.as_str() {
                "response" => {
                    cur = Some(DavItem::default());
                    resp_status = None;
                }
                "propstat" if cur.is_some() => ps = Some((DavItem::default(), None)),
                "collection" if stack.last().is_some_and(|t| t == "resourcetype") => {
                    if let Some((p, _)) = ps.as_mut() {
                        p.dir = true;
                    }
                }
                _ => {}
            }
            stack.push(name.clone());
            if self_closing {
                end_element(&name, "", &mut cur, &mut resp_status, &mut ps, &mut out);
                stack.pop();
            }
        }
        text.clear();
    }
    if !seen_root {
        return Err("empty answer".into());
    }
    Ok(out)
}

fn end_element(
    name: &str,
    text: &str,
    cur: &mut Option<DavItem>,
    resp_status: &mut Option<u16>,
    ps: &mut Option<(DavItem, Option<u16>)>,
    out: &mut Multistatus,
) {
    let t = text.trim();
    let ok = |s: Option<u16>| s.is_none_or(|s| (200..300).contains(&s));
    if let Some((p, st)) = ps.as_mut() {
        match name {
            "getcontentlength" => p.size = t.parse().unwrap_or(0),
            "getlastmodified" => p.mtime = parse_http_date(t),
            "getetag" if !t.is_empty() => p.etag = Some(t.to_string()),
            "status" => *st = status_code(t),
            "propstat" => {
                let (p, st) = ps.take().unwrap();
                match cur.as_mut() {
                    Some(c) if ok(st) => {
                        c.dir |= p.dir;
                        if p.size != 0 {
                            c.size = p.size;
                        }
                        if p.mtime.is_some() {
                            c.mtime = p.mtime;
                        }
                        if p.etag.is_some() {
                            c.etag = p.etag;
                        }
                    }
                    _ => out.any_failed = true,
                }
            }
            _ => {}
        }
        return;
    }
    match name {
        "href" => {
            if let Some(c) = cur.as_mut().filter(|c| c.href.is_empty()) {
                c.href = t.to_string();
            }
        }
        "status" if cur.is_some() => *resp_status = status_code(t),
        "response" => {
            if let Some(c) = cur.take() {
                if !ok(*resp_status) {
                    out.any_failed = true;
                } else if !c.href.is_empty() {
                    out.items.push(c);
                }
            }
        }
        _ => {}
    }
}

/// The ETag without quotes or a weak marker (servers quote it in some answers only).
fn bare_etag(t: &str) -> &str {
    t.trim().trim_start_matches("W/").trim_matches('"')
}

/// The ETag folded to a non-zero 64-bit token; 0 when the server gave none.
fn etag_version(t: Option<&str>) -> i64 {
    match t.map(bare_etag).filter(|t| !t.is_empty()) {
        Some(t) => {
            let h = blake3::hash(t.as_bytes());
            i64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) | 1
        }
        None => 0,
    }
}

fn dir_entry() -> Entry {
    Entry {
        kind: Kind::Dir,
        size: 0,
        mtime: 0,
        mode: 0,
        file_id: 0,
        version: 0,
        hash: None,
    }
}

fn entry_of(it: &DavItem) -> Entry {
    if it.dir {
        return dir_entry();
    }
    Entry {
        kind: Kind::File,
        size: it.size,
        mtime: it.mtime.unwrap_or(0).saturating_mul(1_000_000_000),
        mode: 0,
        file_id: 0,
        version: etag_version(it.etag.as_deref()),
        hash: None,
    }
}

/// The parent (`""` for a top-level name) of a relative path.
fn parent_of(rel: &str) -> &str {
    rel.rfind('/').map(|i| &rel[..i]).unwrap_or("")
}

fn retryable_status(s: u16) -> bool {
    s == 429 || ((500..600).contains(&s) && !matches!(s, 501 | 505 | 507 | 508 | 510 | 511))
}

/// Exponential backoff with jitter: 200 ms, 400 ms, 800 ms... up to 10 s, each between half
/// and all of that.
fn backoff(attempt: u32) -> Duration {
    let full = (200u64 << attempt.min(6)).min(10_000);
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    let half = full / 2;
    Duration::from_millis(half + u64::from_le_bytes(r) % (full - half + 1))
}

/// `Retry-After`: seconds or an HTTP date.
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?.trim();
    let d = match v.parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => {
            let at = parse_http_date(v)?;
            let now = chrono::Utc::now().timestamp();
            Duration::from_secs(at.saturating_sub(now).max(0) as u64)
        }
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// A transport error's text with its causes.
fn net_text(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// An HTTP status as an `io::ErrorKind` and a few words.
fn status_kind(status: u16) -> (io::ErrorKind, &'static str) {
    match status {
        401 | 403 => (io::ErrorKind::PermissionDenied, "access denied"),
        404 | 410 => (io::ErrorKind::NotFound, "not found"),
        409 => (io::ErrorKind::NotFound, "the parent folder does not exist"),
        412 => (io::ErrorKind::Other, "changed on the server meanwhile (a precondition failed)"),
        413 => (io::ErrorKind::FileTooLarge, "too large for the server"),
        423 => (io::ErrorKind::Other, "locked on the server"),
        429 => (io::ErrorKind::TimedOut, "the server is limiting requests (retried)"),
        507 => (io::ErrorKind::StorageFull, "no space left on the server"),
        s if s >= 500 => (io::ErrorKind::Other, "the server failed (retried)"),
        _ => (io::ErrorKind::Other, "the server refused the request"),
    }
}

impl Inner {
    fn probes(&self) -> Probes {
        self.probes.get().copied().unwrap_or_default()
    }

    /// The base folder's URL for messages: no credentials, no slash at the end.
    fn location(&self) -> String {
        let b = self.base_raw.trim_end_matches('/');
        format!("{}{}", self.origin, if b.is_empty() { "/" } else { b })
    }

    fn describe(&self, p: &RelPath) -> String {
        if p.is_root() {
            self.location()
        } else {
            format!("{}{}{}", self.origin, self.base_raw, p.as_str())
        }
    }

    /// The URL of `p` (a folder's with a slash at the end).
    fn url(&self, p: &RelPath, dir: bool) -> String {
        let mut s = format!("{}{}{}", self.origin, self.base_raw, encode_path(p.as_str()));
        if dir && !p.is_root() {
            s.push('/');
        }
        s
    }

    /// Drop prefetched listings: something changed through this side.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.prefetched.lock().unwrap().clear();
    }

    fn scrub(&self, s: String) -> String {
        scrub_secret(s, &self.password)
    }

    fn net_err(&self, place: &str, what: &str, e: &reqwest::Error) -> io::Error {
        let (kind, note) = if e.is_timeout() {
            (io::ErrorKind::TimedOut, "timed out (retried)")
        } else if e.is_connect() {
            (io::ErrorKind::Other, "the server cannot be reached")
        } else {
            (io::ErrorKind::Other, "the connection failed (retried)")
        };
        io::Error::new(kind, self.scrub(format!("{place}: {what}: {note}: {}", net_text(e))))
    }

    fn status_err(&self, place: &str, what: &str, status: u16) -> io::Error {
        let (kind, note) = status_kind(status);
        io::Error::new(
            kind,
            self.scrub(format!("{place}: {what}: {note} (HTTP {status} {})", reason(status))),
        )
    }

    fn xml_err(&self, place: &str, what: &str, why: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            self.scrub(format!("{place}: {what}: unreadable answer: {why}")),
        )
    }

    /// Send one of Tandem's own requests: retried with backoff and jitter on timeouts,
    /// dropped connections, 429 and 5xx (honouring `Retry-After`); not on other statuses.
    async fn send(&self, r: &Req) -> Result<Resp, reqwest::Error> {
        let mut attempt = 0;
        let mut retried = false;
        loop {
            let mut b = self.client.request(r.method.clone(), &r.url).timeout(r.timeout);
            for (k, v) in &r.headers {
                b = b.header(*k, v);
            }
            if !self.user.is_empty() {
                b = b.basic_auth(&self.user, Some(&self.password));
            }
            if let Some(body) = &r.body {
                b = b.body(body.clone());
            }
            let res = async {
                let resp = b.send().await?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let body = resp.bytes().await?.to_vec();
                Ok::<_, reqwest::Error>((status, headers, body))
            }
            .await;
            match res {
                Ok((status, headers, body)) => {
                    if retryable_status(status) && attempt < RETRIES {
                        let wait = retry_after(&headers).unwrap_or_else(|| backoff(attempt));
                        tracing::debug!(url = %r.url, status, "retrying in {wait:?}");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        retried = true;
                        continue;
                    }
                    return Ok(Resp {
                        status,
                        headers,
                        body,
                        retried,
                    });
                }
                Err(e) if attempt < RETRIES && (e.is_timeout() || e.is_connect() || e.is_request() || e.is_body()) => {
                    tracing::debug!(url = %r.url, "retrying after: {}", net_text(&e));
                    // A refused connection never reached the server; anything else may have.
                    retried |= !e.is_connect();
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `send`, with a transport failure as an `io::Error` naming `p`.
    async fn request(&self, p: &RelPath, what: &str, r: Req) -> io::Result<Resp> {
        self.send(&r).await.map_err(|e| self.net_err(&self.describe(p), what, &e))
    }

    /// A PROPFIND of `p` at `depth`; `None` when nothing is there (404).
    async fn propfind(&self, p: &RelPath, dir: bool, depth: &str) -> io::Result<Result<Vec<DavItem>, u16>> {
        let mut req = Req::new("PROPFIND", self.url(p, dir))
            .header("Depth", depth)
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(PROPFIND_BODY);
        if depth == "infinity" {
            req.timeout = LISTING_TIMEOUT;
        }
        let resp = self.request(p, "list", req).await?;
        if resp.status == 207 || resp.status == 200 {
            let xml = String::from_utf8_lossy(&resp.body);
            let m = parse_multistatus(&xml).map_err(|why| self.xml_err(&self.describe(p), "list", why))?;
            return Ok(Ok(m.items));
        }
        Ok(Err(resp.status))
    }

    /// The path (relative to the base, no slashes at the ends) an href names; `None` when it
    /// lies outside the base. `Err(raw)`: not UTF-8.
    fn href_rel(&self, href: &str) -> Option<Result<String, String>> {
        let h = href.trim();
        let path = match h.find("://") {
            Some(i) => {
                let after = &h[i + 3..];
                after.find('/').map(|j| &after[j..]).unwrap_or("/")
            }
            None => h,
        };
        let path = path.split(['?', '#']).next().unwrap_or("");
        let dec = percent_decode(&format!("/{}", path.trim_start_matches('/')));
        let base = self.base_decoded.as_bytes();
        let rest: &[u8] = if dec.len() + 1 == base.len() && base.starts_with(&dec) {
            b""
        } else if let Some(r) = dec.strip_prefix(base) {
            r
        } else if dec.len() >= base.len() && dec[..base.len()].eq_ignore_ascii_case(base) {
            &dec[base.len()..]
        } else if dec.len() + 1 == base.len() && base[..dec.len()].eq_ignore_ascii_case(&dec) {
            b""
        } else {
            return None;
        };
        let rest = trim_slashes(rest);
        Some(match std::str::from_utf8(rest) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(String::from_utf8_lossy(rest).into_owned()),
        })
    }

    /// What `p` is (a PROPFIND of depth 0).
    async fn stat(&self, p: &RelPath) -> io::Result<Option<Node>> {
        Ok(self.stat_item(p).await?.map(|it| Node::Entry(entry_of(&it))))
    }

    async fn stat_item(&self, p: &RelPath) -> io::Result<Option<DavItem>> {
        let mut res = self.propfind(p, p.is_root(), "0").await?;
        if matches!(res, Err(301 | 302 | 307 | 308)) && !p.is_root() {
            // Some servers redirect a folder's URL without the slash to the one with it.
            res = self.propfind(p, true, "0").await?;
        }
        match res {
            Ok(items) => {
                let own = items
                    .iter()
                    .find(|it| {
                        self.href_rel(&it.href)
                            .is_some_and(|r| r.is_ok_and(|r| self.same_rel(&r, p.as_str())))
                    })
                    .or(items.first());
                Ok(own.cloned())
            }
            Err(404 | 410) => Ok(None),
            // A path below a file.
            Err(409) => Ok(None),
            Err(s) => Err(self.status_err(&self.describe(p), "stat", s)),
        }
    }

    fn same_rel(&self, a: &str, b: &str) -> bool {
        a == b || (self.probes().case_insensitive && a.to_lowercase() == b.to_lowercase())
    }

    /// A prefetched listing of `p`, taken (each is handed out once).
    fn take_prefetched(&self, p: &RelPath) -> Option<Vec<DavItem>> {
        let mut m = self.prefetched.lock().unwrap();
        let (at, generation, items) = m.remove(p.as_str())?;
        (at.elapsed() < PREFETCH_TTL && generation == self.generation.load(Ordering::SeqCst)).then_some(items)
    }

    /// The items of a PROPFIND of the folder `p`, grouped by the folder that holds them
    /// (relative paths); the folder itself is checked to be one.
    fn group(&self, p: &RelPath, items: Vec<DavItem>) -> io::Result<HashMap<String, Vec<DavItem>>> {
        Ok(self.group_deep(p, items)?.0)
    }

    /// [`Inner::group`], and whether any item lies deeper than the folder's own children
    /// (proof that the server did list the whole tree).
    fn group_deep(&self, p: &RelPath, items: Vec<DavItem>) -> io::Result<(HashMap<String, Vec<DavItem>>, bool)> {
        let me = p.as_str();
        let mut groups: HashMap<String, Vec<DavItem>> = HashMap::new();
        groups.insert(me.to_string(), Vec::new());
        let mut children = Vec::new();
        for it in items {
            let rel = match self.href_rel(&it.href) {
                Some(Ok(r)) => r,
                Some(Err(raw)) => {
                    // Not UTF-8: listed under its parent, with its raw name.
                    children.push((raw, it));
                    continue;
                }
                None => {
                    tracing::warn!(href = %it.href, place = %self.location(), "the server listed a path outside the base folder: ignored");
                    continue;
                }
            };
            if self.same_rel(&rel, me) {
                if !it.dir {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{}: not a folder", self.describe(p)),
                    ));
                }
                continue;
            }
            let below = me.is_empty() || (rel.len() > me.len() && rel.as_bytes()[me.len()] == b'/' && self.same_rel(&rel[..me.len()], me));
            if !below {
                continue;
            }
            if it.dir {
                groups.entry(rel.clone()).or_default();
            }
            children.push((rel, it));
        }
        let mut deep = false;
        for (rel, it) in children {
            let parent = parent_of(&rel);
            let key = if self.same_rel(parent, me) {
                me
            } else {
                deep = true;
                parent
            };
            groups.entry(key.to_string()).or_default().push(it);
        }
        Ok((groups, deep))
    }

    async fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>> {
        let items = match self.take_prefetched(p) {
            Some(items) => items,
            None => self.list(p).await?,
        };
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let name = match self.href_rel(&it.href) {
                Some(Ok(r)) => Ok(r.rsplit('/').next().unwrap_or(&r).to_string()),
                Some(Err(raw)) => Err(raw.rsplit('/').next().unwrap_or(&raw).to_string()),
                None => continue,
            };
            if matches!(&name, Ok(n) if n.is_empty()) {
                continue;
            }
            out.push(DirItem {
                name,
                node: Ok(Node::Entry(entry_of(&it))),
            });
        }
        Ok(out)
    }

    /// The items directly in folder `p`: from an infinite-depth PROPFIND (keeping the
    /// subfolders' listings for the walk that follows) where the server allows it, else
    /// depth 1.
    async fn list(&self, p: &RelPath) -> io::Result<Vec<DavItem>> {
        let generation = self.generation.load(Ordering::SeqCst);
        if self.depth.load(Ordering::SeqCst) != DEPTH_ONE {
            match self.propfind(p, true, "infinity").await? {
                Ok(items) => {
                    let (mut groups, deep) = self.group_deep(p, items)?;
                    if deep {
                        // Proven: this server lists whole trees. (Until then, a server that
                        // answers an infinite PROPFIND with one level would make every
                        // subfolder look empty: nothing is kept for later.)
                        self.depth.store(DEPTH_INFINITY, Ordering::SeqCst);
                    }
                    let mine = groups.remove(p.as_str()).unwrap_or_default();
                    if self.depth.load(Ordering::SeqCst) == DEPTH_INFINITY && !groups.is_empty() {
                        let now = Instant::now();
                        let mut m = self.prefetched.lock().unwrap();
                        for (k, v) in groups {
                            m.insert(k, (now, generation, v));
                        }
                    }
                    return Ok(mine);
                }
                Err(s @ (404 | 410 | 409)) => return Err(self.list_missing(p, s).await),
                Err(401) => return Err(self.status_err(&self.describe(p), "list", 401)),
                Err(s) => {
                    // 403 "propfind-finite-depth" (Apache, Nextcloud), 400, 501...: depth 1.
                    tracing::debug!(place = %self.location(), status = s, "no infinite-depth listings: listing folder by folder");
                    self.depth.store(DEPTH_ONE, Ordering::SeqCst);
                }
            }
        }
        match self.propfind(p, true, "1").await? {
            Ok(items) => Ok(self.group(p, items)?.remove(p.as_str()).unwrap_or_default()),
            Err(s @ (404 | 410 | 409)) => Err(self.list_missing(p, s).await),
            Err(s) => Err(self.status_err(&self.describe(p), "list", s)),
        }
    }

    async fn list_missing(&self, p: &RelPath, status: u16) -> io::Error {
        match self.stat_item(p).await {
            Ok(Some(it)) if !it.dir => io::Error::new(io::ErrorKind::NotADirectory, format!("{}: not a folder", self.describe(p))),
            _ => {
                let mut e = self.status_err(&self.describe(p), "list", status);
                if e.kind() == io::ErrorKind::NotFound {
                    e = io::Error::new(io::ErrorKind::NotFound, format!("{}: no such folder", self.describe(p)));
                }
                e
            }
        }
    }

    /// MKCOL of each missing folder on the way, top down; a file in the way is an error.
    async fn create_dir_all(&self, p: &RelPath) -> io::Result<()> {
        let mut chain: Vec<RelPath> = p.ancestors().collect();
        chain.reverse();
        chain.push(p.clone());
        if p.is_root() {
            chain = vec![RelPath::root()];
        }
        let mut missing = false;
        for d in chain {
            if !missing {
                match self.stat_item(&d).await? {
                    Some(it) if it.dir => continue,
                    Some(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("{}: a file is in the way of folder {}", self.describe(&d), self.describe(p)),
                        ))
                    }
                    None if d.is_root() => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{}: no such folder", self.describe(&d)),
                        ))
                    }
                    None => missing = true,
                }
            }
            self.changed();
            let resp = self.request(&d, "create folder", Req::new("MKCOL", self.url(&d, true))).await?;
            match resp.status {
                s if (200..300).contains(&s) => {}
                // Exists already (made meanwhile, or by an earlier attempt of this request).
                405 => match self.stat_item(&d).await? {
                    Some(it) if it.dir => {}
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("{}: a file is in the way of folder {}", self.describe(&d), self.describe(p)),
                        ))
                    }
                },
                s => return Err(self.status_err(&self.describe(&d), "create folder", s)),
            }
        }
        Ok(())
    }

    async fn remove_file(&self, p: &RelPath) -> io::Result<()> {
        let it = match self.stat_item(p).await? {
            Some(it) if it.dir => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{}: is a folder", self.describe(p)),
                ))
            }
            Some(it) => it,
            None => return Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: not found", self.describe(p)))),
        };
        self.changed();
        let mut req = Req::new("DELETE", self.url(p, false));
        if let Some(tag) = it.etag.as_deref().filter(|t| self.probes().conditional && !t.starts_with("W/")) {
            req = req.header("If-Match", format!("\"{}\"", bare_etag(tag)));
        }
        let resp = self.request(p, "delete", req).await?;
        match resp.status {
            s if (200..300).contains(&s) => Ok(()),
            404 if resp.retried => Ok(()),
            412 => Err(io::Error::other(format!(
                "{}: delete: changed on the server since it was checked; not deleted",
                self.describe(p)
            ))),
            s => Err(self.status_err(&self.describe(p), "delete", s)),
        }
    }

    /// DELETE of an empty folder. (WebDAV deletes a folder with everything in it: the
    /// listing first refuses a full one; a file put there between the two goes with it.)
    async fn remove_dir(&self, p: &RelPath) -> io::Result<()> {
        if p.is_root() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: the root of the side is never removed", self.describe(p)),
            ));
        }
        match self.stat_item(p).await? {
            Some(it) if it.dir => {}
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{}: not a folder", self.describe(p)),
                ))
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: no such folder", self.describe(p)),
                ))
            }
        }
        let items = match self.propfind(p, true, "1").await? {
            Ok(items) => self.group(p, items)?.remove(p.as_str()).unwrap_or_default(),
            Err(s) => return Err(self.status_err(&self.describe(p), "list", s)),
        };
        if let Some(first) = items.first() {
            let name = self.href_rel(&first.href).map(|r| r.unwrap_or_else(|raw| raw)).unwrap_or_default();
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{}: folder not empty (it still holds {:?})", self.describe(p), name),
            ));
        }
        self.changed();
        let resp = self.request(p, "remove folder", Req::new("DELETE", self.url(p, true))).await?;
        match resp.status {
            s if (200..300).contains(&s) => Ok(()),
            404 if resp.retried => Ok(()),
            s => Err(self.status_err(&self.describe(p), "remove folder", s)),
        }
    }

    /// MOVE or COPY `from` to `to`: `Overwrite: F` when `to` is free (the server refuses
    /// to replace what appeared meanwhile), `T` only over what `replace` allows.
    async fn move_or_copy(&self, verb: &str, from: &RelPath, to: &RelPath, dir: bool, overwrite: bool) -> io::Result<Resp> {
        self.changed();
        let req = Req::new(verb, self.url(from, dir))
            .header("Destination", self.url(to, dir))
            .header("Overwrite", if overwrite { "T" } else { "F" })
            .header("Depth", if verb == "COPY" && !dir { "0" } else { "infinity" });
        self.request(from, if verb == "MOVE" { "rename" } else { "server-side copy" }, req)
            .await
    }

    async fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        if from == to {
            return Ok(());
        }
        let both = || format!("{} -> {}", self.describe(from), self.describe(to));
        if from.is_root() || to.is_root() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: the root of the side cannot be renamed", both()),
            ));
        }
        let src = match self.stat_item(from).await? {
            Some(it) => it,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: not found", self.describe(from)),
                ))
            }
        };
        if src.dir && to.starts_with(from) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: cannot move a folder into itself ({})", self.describe(from), self.describe(to)),
            ));
        }
        if self.same_rel(from.as_str(), to.as_str()) {
            // A change of case on a case-insensitive server: one MOVE would find its target
            // "existing" (the file itself) and refuse, or delete it first. Through a free
            // temporary name instead.
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let tmp = to.with_name(&format!(".tandem-case-{}-{n}.tmp", std::process::id()));
            self.move_free(from, &tmp, src.dir).await?;
            if let Err(e) = self.move_free(&tmp, to, src.dir).await {
                if let Err(back) = self.move_free(&tmp, from, src.dir).await {
                    tracing::error!(path = %self.describe(from), kept = %self.describe(&tmp), "cannot undo a case rename: {back}");
                }
                return Err(e);
            }
            return Ok(());
        }
        let dst = self.stat_item(to).await?;
        let overwrite = match &dst {
            None => false,
            Some(d) if d.dir && !src.dir => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!(
                        "{}: cannot replace a folder with the file {}",
                        self.describe(to),
                        self.describe(from)
                    ),
                ))
            }
            Some(d) if !d.dir && src.dir => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!(
                        "{}: cannot replace a file with the folder {}",
                        self.describe(to),
                        self.describe(from)
                    ),
                ))
            }
            Some(d) if d.dir => {
                let inside = match self.propfind(to, true, "1").await? {
                    Ok(items) => self.group(to, items)?.remove(to.as_str()).unwrap_or_default(),
                    Err(s) => return Err(self.status_err(&self.describe(to), "list", s)),
                };
                if !inside.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::DirectoryNotEmpty,
                        format!("{}: target folder not empty", self.describe(to)),
                    ));
                }
                true
            }
            Some(_) => true,
        };
        let resp = self.move_or_copy("MOVE", from, to, src.dir, overwrite).await?;
        if resp.retried && matches!(resp.status, 404 | 412) && self.stat_item(from).await?.is_none() && self.stat_item(to).await?.is_some()
        {
            // An earlier attempt did it.
            return Ok(());
        }
        match resp.status {
            s if (200..300).contains(&s) => Ok(()),
            412 => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("rename {}: the target appeared on the server meanwhile; not replaced", both()),
            )),
            s @ (403 | 404 | 409) => {
                if self.stat_item(from).await?.is_none() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{}: not found", self.describe(from)),
                    ));
                }
                if !matches!(self.stat_item(&to.dir()).await?, Some(it) if it.dir) {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("rename {}: the target folder {} does not exist", both(), self.describe(&to.dir())),
                    ));
                }
                Err(self.status_err(&both(), "rename", s))
            }
            s => Err(self.status_err(&both(), "rename", s)),
        }
    }

    /// MOVE to a name that must be free (`Overwrite: F`).
    async fn move_free(&self, from: &RelPath, to: &RelPath, dir: bool) -> io::Result<()> {
        let resp = self.move_or_copy("MOVE", from, to, dir, false).await?;
        match resp.status {
            s if (200..300).contains(&s) => Ok(()),
            412 => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists; not replaced", self.describe(to)),
            )),
            s => Err(self.status_err(&format!("{} -> {}", self.describe(from), self.describe(to)), "rename", s)),
        }
    }

    async fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        match self.stat_item(from).await? {
            Some(it) if !it.dir => {}
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{}: is a folder", self.describe(from)),
                ))
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: no such file to copy", self.describe(from)),
                ))
            }
        }
        if self.stat_item(to).await?.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", self.describe(to)),
            ));
        }
        let resp = self.move_or_copy("COPY", from, to, false, false).await?;
        let both = || format!("{} -> {}", self.describe(from), self.describe(to));
        match resp.status {
            s if (200..300).contains(&s) => Ok(()),
            412 if resp.retried => Ok(()),
            412 => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", self.describe(to)),
            )),
            s => Err(self.status_err(&both(), "server-side copy", s)),
        }
    }

    /// PROPPATCH the mtime (whole seconds) the way the probe found to work.
    async fn set_mtime(&self, p: &RelPath, mtime_ns: i64) -> io::Result<()> {
        self.set_mtime_with(p, self.probes().set_mtime, mtime_ns.div_euclid(1_000_000_000))
            .await
    }

    async fn set_mtime_with(&self, p: &RelPath, via: MtimeVia, secs: i64) -> io::Result<()> {
        let body = match via {
            MtimeVia::None => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{}: this WebDAV server keeps its own modification times", self.describe(p)),
                ))
            }
            MtimeVia::DavLastModified => format!(
                r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:lastmodified>{secs}</D:lastmodified></D:prop></D:set></D:propertyupdate>"#
            ),
            MtimeVia::Win32 => format!(
                r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32LastModifiedTime>{}</Z:Win32LastModifiedTime></D:prop></D:set></D:propertyupdate>"#,
                http_date(secs)
            ),
            MtimeVia::GetLastModified => format!(
                r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:getlastmodified>{}</D:getlastmodified></D:prop></D:set></D:propertyupdate>"#,
                http_date(secs)
            ),
        };
        self.proppatch(p, body).await
    }

    async fn proppatch(&self, p: &RelPath, body: String) -> io::Result<()> {
        self.changed();
        let req = Req::new("PROPPATCH", self.url(p, false))
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body);
        let resp = self.request(p, "set modification time", req).await?;
        match resp.status {
            207 => {
                let m = parse_multistatus(&String::from_utf8_lossy(&resp.body))
                    .map_err(|why| self.xml_err(&self.describe(p), "set modification time", why))?;
                if m.any_failed {
                    return Err(io::Error::other(format!(
                        "{}: set modification time: the server refused the property",
                        self.describe(p)
                    )));
                }
                Ok(())
            }
            s if (200..300).contains(&s) => Ok(()),
            s => Err(self.status_err(&self.describe(p), "set modification time", s)),
        }
    }

    /// A whole small file in one `PUT` (retried), `If-None-Match: *`, with `X-OC-Mtime`
    /// when `oc_mtime` (seconds) is given.
    async fn put_small(&self, p: &RelPath, data: Vec<u8>, oc_mtime: Option<i64>) -> io::Result<Option<String>> {
        let mut req = Req::new("PUT", self.url(p, false))
            .header("If-None-Match", "*")
            .header("Content-Type", "application/octet-stream")
            .body(data);
        if let Some(t) = oc_mtime {
            req = req.header("X-OC-Mtime", t.to_string());
        }
        let resp = self.request(p, "upload", req).await?;
        match resp.status {
            s if (200..300).contains(&s) => Ok(resp.header("etag")),
            // An earlier attempt may have created it: the check after the upload decides.
            412 if resp.retried => Ok(None),
            412 => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{}: upload: exists (created on the server meanwhile; not overwritten)",
                    self.describe(p)
                ),
            )),
            s => Err(self.status_err(&self.describe(p), "upload", s)),
        }
    }

    /// Start a streamed upload: claim the name (an empty `PUT` `If-None-Match: *`), then
    /// the body's `PUT` (`If-Match` the claim's ETag where conditions hold) fed by a queue.
    async fn start_stream(self: Arc<Self>, p: RelPath) -> io::Result<Upload> {
        let claim = self.put_small(&p, Vec::new(), None).await?;
        let claim = match claim {
            Some(t) => Some(t),
            None => self.stat_item(&p).await?.and_then(|it| it.etag),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, io::Error>>(QUEUE);
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut b = self
            .client
            .put(self.url(&p, false))
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body));
        if let Some(t) = claim.as_deref().filter(|t| self.probes().conditional && !t.starts_with("W/")) {
            b = b.header("If-Match", format!("\"{}\"", bare_etag(t)));
        }
        if !self.user.is_empty() {
            b = b.basic_auth(&self.user, Some(&self.password));
        }
        let task = tokio::spawn(async move {
            let resp = b.send().await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?.to_vec();
            Ok(Resp {
                status,
                headers,
                body,
                retried: false,
            })
        });
        Ok(Upload { tx, task })
    }

    /// After an upload: the file must be there with the bytes sent and, where a `PUT`'s
    /// ETag is what a PROPFIND shows, with the ETag our `PUT` got. Else someone else's
    /// version replaced ours during the upload.
    async fn check_upload(&self, p: &RelPath, bytes: u64, etag: Option<&str>, with_oc_mtime: bool) -> io::Result<()> {
        let pr = self.probes();
        let comparable = if with_oc_mtime { pr.oc_etag_matches } else { pr.put_etag_matches };
        let changed = |what: String| {
            io::Error::other(format!(
                "{}: changed on the server during the upload ({what}); the upload is not taken for it",
                self.describe(p)
            ))
        };
        match self.stat_item(p).await? {
            None => Err(changed("it is gone".into())),
            Some(it) if it.dir => Err(changed("it is a folder now".into())),
            Some(it) if it.size != bytes => Err(changed(format!("{} bytes there, {bytes} sent", it.size))),
            Some(it) => match (etag, it.etag.as_deref()) {
                (Some(ours), Some(now)) if comparable && bare_etag(ours) != bare_etag(now) => Err(changed("another ETag".into())),
                _ => Ok(()),
            },
        }
    }

    /// The checks and probes of `connect`: the base folder answers and is a folder, then
    /// what the server does (see the module's documentation). The probe files are removed
    /// whatever happens.
    async fn open(&self) -> io::Result<Probes> {
        let root = RelPath::root();
        let resp = self
            .send(
                &Req::new("PROPFIND", self.url(&root, true))
                    .header("Depth", "0")
                    .header("Content-Type", "application/xml; charset=utf-8")
                    .body(PROPFIND_BODY),
            )
            .await
            .map_err(|e| self.net_err(&self.location(), "cannot open", &e))?;
        let fail = |kind: io::ErrorKind, why: String| io::Error::new(kind, self.scrub(format!("{}: cannot open: {why}", self.location())));
        match resp.status {
            207 | 200 => {}
            401 | 403 => {
                return Err(fail(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "access denied (wrong user name or password, or no right to this folder) (HTTP {})",
                        resp.status
                    ),
                ))
            }
            404 | 409 | 410 => {
                return Err(fail(
                    io::ErrorKind::NotFound,
                    format!("no such folder on the server (HTTP {})", resp.status),
                ))
            }
            s => {
                let (kind, note) = status_kind(s);
                return Err(fail(kind, format!("{note} (HTTP {s} {}); is this a WebDAV folder?", reason(s))));
            }
        }
        let m = parse_multistatus(&String::from_utf8_lossy(&resp.body))
            .map_err(|why| fail(io::ErrorKind::InvalidData, format!("not a WebDAV answer: {why}")))?;
        match m.items.first() {
            Some(it) if it.dir => {}
            Some(_) => return Err(fail(io::ErrorKind::NotADirectory, "not a folder".into())),
            None => return Err(fail(io::ErrorKind::NotFound, "no such folder on the server".into())),
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let mut r = [0u8; 4];
        let _ = getrandom::fill(&mut r);
        let stem = format!(
            ".tandem-probe-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            r.iter().map(|x| format!("{x:02x}")).collect::<String>()
        );
        let a = RelPath::new(&format!("{stem}.tmp")).expect("a probe name is a valid path");
        let b = RelPath::new(&format!("{stem}-moved.tmp")).expect("a probe name is a valid path");
        let res = self.probe(&a, &b).await;
        for p in [&a, &b] {
            if let Ok(resp) = self.send(&Req::new("DELETE", self.url(p, false))).await {
                if !resp.ok() && resp.status != 404 {
                    tracing::warn!(path = %self.describe(p), status = resp.status, "cannot remove the probe file");
                }
            }
        }
        self.changed();
        res.map_err(|e| fail(e.kind(), format!("probing what the server can do: {e}")))
    }

    async fn probe(&self, a: &RelPath, b: &RelPath) -> io::Result<Probes> {
        let mut pr = Probes::default();
        let put = |extra: Vec<(&'static str, String)>, body: &'static [u8]| {
            let mut req = Req::new("PUT", self.url(a, false)).body(body);
            for (k, v) in extra {
                req = req.header(k, v);
            }
            async move { self.request(a, "probe upload", req).await }
        };
        // The probe file, create-only.
        let first = put(vec![("If-None-Match", "*".into())], b"tandem probe\n").await?;
        if !first.ok() {
            let (kind, note) = status_kind(first.status);
            return Err(io::Error::new(
                kind,
                format!(
                    "cannot write in the folder: {note} (HTTP {} {})",
                    first.status,
                    reason(first.status)
                ),
            ));
        }
        let put_etag = first.header("etag");
        let st = self
            .stat_item(a)
            .await?
            .ok_or_else(|| io::Error::other("the probe file written is not found"))?;
        pr.etags = st.etag.is_some();
        pr.put_etag_matches = matches!((&put_etag, &st.etag), (Some(x), Some(y)) if bare_etag(x) == bare_etag(y));
        // Conditional writes: both must be refused.
        let again = put(vec![("If-None-Match", "*".into())], b"tandem probe, again\n").await?;
        let wrong = put(vec![("If-Match", "\"tandem-no-such-etag\"".into())], b"tandem probe, wrong etag\n").await?;
        pr.conditional = again.status == 412 && wrong.status == 412;
        // X-OC-Mtime, and the ETag such a PUT answers.
        let oc = put(vec![("X-OC-Mtime", PROBE_OC_MTIME.to_string())], b"tandem probe, X-OC-Mtime\n").await?;
        if oc.ok() {
            let st = self.stat_item(a).await?;
            pr.x_oc_mtime = st.as_ref().is_some_and(|it| it.mtime == Some(PROBE_OC_MTIME));
            pr.oc_etag_matches =
                matches!((oc.header("etag"), st.and_then(|it| it.etag)), (Some(x), Some(y)) if bare_etag(&x) == bare_etag(&y));
        }
        // Weak ETags: two contents of the same size, written in the same second (the same
        // X-OC-Mtime where the server takes it), get the same ETag. A pair of writes that
        // straddles a second boundary cannot tell: tried again.
        if pr.etags {
            for _ in 0..3 {
                let mut seen = Vec::new();
                for body in [&b"tandem probe, etag A\n"[..], &b"tandem probe, etag B\n"[..]] {
                    let extra = if pr.x_oc_mtime {
                        vec![("X-OC-Mtime", PROBE_OC_MTIME.to_string())]
                    } else {
                        Vec::new()
                    };
                    put(extra, body).await?;
                    seen.push(self.stat_item(a).await?.map(|it| (it.mtime, it.etag)));
                }
                if let [Some((m1, Some(e1))), Some((m2, Some(e2)))] = &seen[..] {
                    if m1 == m2 {
                        pr.weak_etags = bare_etag(e1) == bare_etag(e2);
                        break;
                    }
                }
            }
        }
        // Settable mtimes: set, then read back.
        for via in [MtimeVia::DavLastModified, MtimeVia::Win32, MtimeVia::GetLastModified] {
            let set = self.set_mtime_with(a, via, PROBE_SET_MTIME).await;
            let got = self.stat_item(a).await?.and_then(|it| it.mtime);
            if set.is_ok() && got == Some(PROBE_SET_MTIME) {
                pr.set_mtime = via;
                break;
            }
        }
        // Case: the same name in upper case.
        let upper = RelPath::new(&a.as_str().to_uppercase()).expect("a probe name is a valid path");
        pr.case_insensitive = self.stat_item(&upper).await?.is_some_and(|it| !it.dir);
        // MOVE (create-only).
        let resp = self
            .request(
                a,
                "probe rename",
                Req::new("MOVE", self.url(a, false))
                    .header("Destination", self.url(b, false))
                    .header("Overwrite", "F"),
            )
            .await?;
        let moved = resp.ok() && self.stat_item(b).await?.is_some() && (pr.case_insensitive || self.stat_item(a).await?.is_none());
        if !moved {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the server cannot rename (MOVE answered HTTP {} {}); Tandem needs it",
                    resp.status,
                    reason(resp.status)
                ),
            ));
        }
        Ok(pr)
    }
}

fn trim_slashes(mut b: &[u8]) -> &[u8] {
    while let [b'/', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b'/'] = b {
        b = rest;
    }
    b
}

impl WebDavSide {
    /// Open the side: the base folder must answer as a folder (an unreachable server,
    /// refused credentials or a missing folder give an error naming the URL, never the
    /// password), then the probes find out what the server does.
    pub fn connect(cfg: WebDavConfig) -> io::Result<WebDavSide> {
        install_transport();
        let (origin, base_raw) = parse_endpoint(&cfg.endpoint)?;
        let base_decoded = String::from_utf8_lossy(&percent_decode(&base_raw)).into_owned();
        let location = format!("{origin}{}", base_raw.trim_end_matches('/'));
        let scrub = |s: String| scrub_secret(s, &cfg.password);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(STALL)
            .pool_idle_timeout(Duration::from_secs(60))
            // A redirect would change PROPFIND into GET: answered as a status instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| io::Error::other(scrub(format!("{location}: cannot start an HTTP client: {}", net_text(&e)))))?;
        let mut b = opendal::services::Webdav::default().endpoint(&origin).root(&base_decoded);
        if !cfg.user.is_empty() {
            b = b.username(&cfg.user).password(&cfg.password);
        }
        let op = Operator::new(b)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, scrub(format!("{location}: {}", err_text(&e)))))?
            .layer(
                TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(300))
                    .with_io_timeout(Duration::from_secs(180)),
            )
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_factor(2.0)
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(10))
                    .with_max_times(4),
            );
        let inner = Arc::new(Inner {
            client,
            op,
            origin,
            base_raw,
            base_decoded,
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            probes: OnceLock::new(),
            depth: AtomicU8::new(DEPTH_UNKNOWN),
            generation: AtomicU64::new(0),
            prefetched: Mutex::new(HashMap::new()),
        });
        let i = inner.clone();
        let probes = run(async move { i.open().await })??;
        let _ = inner.probes.set(probes);
        tracing::info!(place = %inner.location(), "{}", note_text(&inner.location(), &probes));
        Ok(WebDavSide { inner })
    }

    fn call<T, F, Fut>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = io::Result<T>> + Send + 'static,
    {
        run(f(self.inner.clone()))?
    }
}

fn note_text(location: &str, p: &Probes) -> String {
    let cond = if p.conditional {
        "conditional writes enforced (If-None-Match/If-Match)"
    } else {
        "conditional writes not enforced (uploads are checked before and after instead)"
    };
    let mtime = match p.set_mtime {
        MtimeVia::None => "mtimes not settable (the server's upload times are kept)",
        MtimeVia::DavLastModified => "mtimes settable (PROPPATCH lastmodified)",
        MtimeVia::Win32 => "mtimes settable (PROPPATCH Win32LastModifiedTime)",
        MtimeVia::GetLastModified => "mtimes settable (PROPPATCH getlastmodified)",
    };
    let oc = if p.x_oc_mtime {
        "X-OC-Mtime honoured"
    } else {
        "X-OC-Mtime ignored"
    };
    let case = if p.case_insensitive {
        "case-insensitive names"
    } else {
        "case-sensitive names"
    };
    let etag = match (p.etags, p.weak_etags) {
        (false, _) => "no ETags",
        (true, false) => "ETags as version tokens",
        (true, true) => "ETags made from time and size (a file changed in its last second is read once that second is over)",
    };
    format!("WebDAV server {location}: {cond}, {mtime}, {oc}, {case}, {etag}; changes made on the server are found by polling")
}

/// A streamed upload in progress: the body's queue and the request's task.
struct Upload {
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, io::Error>>,
    task: tokio::task::JoinHandle<Result<Resp, reqwest::Error>>,
}

/// A file being written (see the module's documentation): bytes gather in `buf`; a small
/// file is sent whole by `finish`, a larger one streams through an [`Upload`].
struct DavWriter {
    inner: Arc<Inner>,
    path: RelPath,
    buf: Vec<u8>,
    bytes: u64,
    upload: Option<Upload>,
    /// Set once something failed: the writer is unusable.
    failed: bool,
    finished: bool,
}

impl DavWriter {
    fn fail(&mut self, e: io::Error) -> io::Error {
        self.failed = true;
        e
    }

    fn gone(&self) -> io::Error {
        io::Error::other(format!("{}: the upload failed before", self.inner.describe(&self.path)))
    }

    /// Hand `buf` to the streamed upload (starting it first).
    fn send(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(self.gone());
        }
        if self.upload.is_none() {
            let (i, p) = (self.inner.clone(), self.path.clone());
            match run(async move { i.start_stream(p).await }).and_then(|r| r) {
                Ok(u) => self.upload = Some(u),
                Err(e) => return Err(self.fail(e)),
            }
        }
        let tx = self.upload.as_ref().unwrap().tx.clone();
        let data = std::mem::take(&mut self.buf);
        let res = run(async move { tokio::time::timeout(STALL, tx.send(Ok(data))).await });
        match res {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(_))) => {
                // The request ended early: its answer says why.
                let e = self.outcome().err().unwrap_or_else(|| self.gone());
                Err(self.fail(e))
            }
            Ok(Err(_)) => {
                let e = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{}: upload: the server took no data for {STALL:?}", self.inner.describe(&self.path)),
                );
                Err(self.fail(e))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Close the body and wait for the streamed `PUT`'s answer; its ETag.
    fn outcome(&mut self) -> io::Result<Option<String>> {
        let Some(Upload { tx, task }) = self.upload.take() else {
            return Err(self.gone());
        };
        drop(tx);
        let abort = task.abort_handle();
        let res = run(async move { tokio::time::timeout(STALL, task).await });
        let place = self.inner.describe(&self.path);
        let resp = match res {
            Ok(Ok(Ok(Ok(r)))) => r,
            Ok(Ok(Ok(Err(e)))) => return Err(self.inner.net_err(&place, "upload", &e)),
            Ok(Ok(Err(e))) => return Err(io::Error::other(format!("{place}: upload: {e}"))),
            Ok(Err(_)) => {
                abort.abort();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{place}: upload: no answer from the server for {STALL:?}"),
                ));
            }
            Err(e) => return Err(e),
        };
        match resp.status {
            s if (200..300).contains(&s) => Ok(resp.header("etag")),
            412 => Err(io::Error::other(format!(
                "{place}: upload: changed on the server during the upload (If-Match failed); not overwritten"
            ))),
            s => {
                let mut e = self.inner.status_err(&place, "upload", s);
                if let Some(w) = retry_after(&resp.headers) {
                    e = io::Error::new(e.kind(), format!("{e}; the server asks to retry after {w:?}"));
                }
                Err(e)
            }
        }
    }
}

impl Write for DavWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(self.gone());
        }
        self.buf.extend_from_slice(b);
        self.bytes += b.len() as u64;
        let threshold = if self.upload.is_some() { CHUNK } else { SMALL + 1 };
        if self.buf.len() >= threshold {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        // The server has the file when `finish` returns.
        Ok(())
    }
}

impl FileWriter for DavWriter {
    /// Completes the upload, checks it, then sets the mtime where the server allows it
    /// (whole seconds). WebDAV keeps no modes: `mode` is not applied (`Caps::modes`).
    fn finish(mut self: Box<Self>, mtime_ns: i64, _mode: u32) -> io::Result<()> {
        if self.failed {
            return Err(self.gone());
        }
        // A small file's mtime goes with its PUT where the server takes `X-OC-Mtime` (one
        // request less); a streamed one's is known only now, after its body: PROPPATCH.
        let pr = self.inner.probes();
        let oc = (self.upload.is_none() && pr.x_oc_mtime && pr.set_mtime != MtimeVia::None).then(|| mtime_ns.div_euclid(1_000_000_000));
        let etag = if self.upload.is_none() {
            let data = std::mem::take(&mut self.buf);
            let (i, p) = (self.inner.clone(), self.path.clone());
            let r = run(async move { i.put_small(&p, data, oc).await }).and_then(|r| r);
            r.map_err(|e| self.fail(e))?
        } else {
            if !self.buf.is_empty() {
                self.send()?;
            }
            let r = self.outcome();
            r.map_err(|e| self.fail(e))?
        };
        self.finished = true;
        let (i, p, bytes) = (self.inner.clone(), self.path.clone(), self.bytes);
        run(async move {
            i.changed();
            i.check_upload(&p, bytes, etag.as_deref(), oc.is_some()).await?;
            if i.probes().set_mtime != MtimeVia::None && oc.is_none() {
                i.set_mtime(&p, mtime_ns).await?;
            }
            Ok(())
        })?
    }
}

impl Drop for DavWriter {
    /// Unfinished: break the streamed `PUT` and remove what it claimed (a name that was
    /// free when the upload began). A small file was never sent.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(Upload { tx, mut task }) = self.upload.take() else {
            return;
        };
        let (i, p) = (self.inner.clone(), self.path.clone());
        let res = run(async move {
            // An error in the body makes the client drop the connection without the chunked
            // body's last chunk: the server sees a broken upload, never a complete short file
            // (merely ending the body, or dropping the request, would commit what was sent).
            let broken = io::Error::other("upload abandoned");
            let _ = tokio::time::timeout(Duration::from_secs(30), tx.send(Err(broken))).await;
            drop(tx);
            if tokio::time::timeout(Duration::from_secs(30), &mut task).await.is_err() {
                task.abort();
            }
            i.changed();
            // The server may still be closing the broken upload: check, and remove again.
            let mut last = None;
            for round in 0..3 {
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if i.stat_item(&p).await.ok().flatten().is_none() {
                        break;
                    }
                }
                last = Some(i.send(&Req::new("DELETE", i.url(&p, false))).await);
            }
            last
        });
        let place = self.inner.describe(&self.path);
        match res {
            Ok(Some(Ok(r))) if r.ok() || r.status == 404 => {}
            Ok(Some(Ok(r))) => tracing::warn!(path = %place, status = r.status, "cannot remove the unfinished upload"),
            Ok(Some(Err(e))) => tracing::warn!(path = %place, "cannot remove the unfinished upload: {}", net_text(&e)),
            Ok(None) => {}
            Err(e) => tracing::warn!(path = %place, "cannot remove the unfinished upload: {e}"),
        }
    }
}

fn op_err(inner: &Inner, p: &RelPath, what: &str, e: opendal::Error) -> io::Error {
    let (kind, note) = io_kind(&e);
    io::Error::new(
        kind,
        inner.scrub(format!("{}: {what}: {note}: {}", inner.describe(p), err_text(&e))),
    )
}

impl Replica for WebDavSide {
    fn caps(&self) -> Caps {
        let p = self.inner.probes();
        Caps {
            case_insensitive: p.case_insensitive,
            // getlastmodified is an HTTP date.
            mtime_resolution_ns: 1_000_000_000,
            set_mtime: p.set_mtime != MtimeVia::None,
            modes: false,
            ids: false,
            version: if p.etags { VersionToken::Etag } else { VersionToken::None },
            weak_version: p.etags && p.weak_etags,
            free_hash: None,
            // MOVE with Overwrite: T deletes the target first on common servers.
            atomic_replace: false,
            keep_version: KeepVersion::ServerCopy,
            needs_flush: false,
            // A large upload claims its name with an empty file first.
            whole_uploads: false,
            cheap_listing: false,
            changes: ChangeSource::Poll,
        }
    }

    fn describe(&self, p: &RelPath) -> String {
        self.inner.describe(p)
    }

    fn note(&self) -> Option<String> {
        Some(note_text(&self.inner.location(), &self.inner.probes()))
    }

    fn stat(&self, p: &RelPath) -> io::Result<Option<Node>> {
        let p = p.clone();
        self.call(|i| async move { i.stat(&p).await })
    }

    fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>> {
        let p = p.clone();
        self.call(|i| async move { i.read_dir(&p).await })
    }

    fn open_read(&self, p: &RelPath) -> io::Result<Box<dyn Read + Send>> {
        let path = p.clone();
        let stream = self.call(|i| async move {
            let key = path.as_str().to_string();
            let r =
                i.op.reader_options(&key, ReaderOptions::default())
                    .await
                    .map_err(|e| op_err(&i, &path, "open", e))?;
            let mut s = r.into_bytes_stream(..).await.map_err(|e| op_err(&i, &path, "open", e))?;
            // Sends the GET now, so a missing file is an error of `open_read`.
            s.metadata().await.map_err(|e| op_err(&i, &path, "open", e))?;
            Ok(s)
        })?;
        let inner = self.inner.clone();
        Ok(Box::new(StreamReader::new(self.describe(p), stream, move |m| inner.scrub(m))))
    }

    fn create_new(&self, p: &RelPath) -> io::Result<Box<dyn FileWriter>> {
        if p.is_root() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: is the root folder", self.describe(p)),
            ));
        }
        let path = p.clone();
        let exists = self.call(|i| async move { i.stat_item(&path).await })?.is_some();
        if exists {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", self.describe(p)),
            ));
        }
        Ok(Box::new(DavWriter {
            inner: self.inner.clone(),
            path: p.clone(),
            buf: Vec::new(),
            bytes: 0,
            upload: None,
            failed: false,
            finished: false,
        }))
    }

    fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        let (from, to) = (from.clone(), to.clone());
        self.call(|i| async move { i.rename(&from, &to).await })
    }

    fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        let (from, to) = (from.clone(), to.clone());
        self.call(|i| async move { i.keep_copy(&from, &to).await })
    }

    fn remove_file(&self, p: &RelPath) -> io::Result<()> {
        let p = p.clone();
        self.call(|i| async move { i.remove_file(&p).await })
    }

    fn remove_dir(&self, p: &RelPath) -> io::Result<()> {
        let p = p.clone();
        self.call(|i| async move { i.remove_dir(&p).await })
    }

    fn create_dir_all(&self, p: &RelPath) -> io::Result<()> {
        let p = p.clone();
        self.call(|i| async move { i.create_dir_all(&p).await })
    }

    /// Whole seconds, through the PROPPATCH the probe found to work; `Unsupported` where
    /// none does.
    fn set_mtime(&self, p: &RelPath, mtime_ns: i64) -> io::Result<()> {
        let p = p.clone();
        self.call(|i| async move { i.set_mtime(&p, mtime_ns).await })
    }

    fn set_mode(&self, p: &RelPath, _mode: u32) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{}: WebDAV files have no permission bits", self.describe(p)),
        ))
    }

    /// Nothing to do: an upload, move or delete is durable when the server answers.
    fn make_durable(&self, _files: &[RelPath], _dirs: &[RelPath]) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WSGIDAV: &str = r#"<?xml version="1.0" encoding="utf-8" ?>
<ns0:multistatus xmlns:ns0="DAV:"><ns0:response><ns0:href>/base/</ns0:href><ns0:propstat><ns0:prop><ns0:resourcetype><ns0:collection /></ns0:resourcetype><ns0:getlastmodified>Thu, 03 Dec 2026 08:31:00 GMT</ns0:getlastmodified></ns0:prop><ns0:status>HTTP/1.1 200 OK</ns0:status></ns0:propstat></ns0:response><ns0:response><ns0:href>/base/a%20b%26c.txt</ns0:href><ns0:propstat><ns0:prop><ns0:resourcetype /><ns0:getcontentlength>3</ns0:getcontentlength><ns0:getlastmodified>Thu, 03 Dec 2026 08:31:00 GMT</ns0:getlastmodified><ns0:getetag>10011033-1796286660-3</ns0:getetag></ns0:prop><ns0:status>HTTP/1.1 200 OK</ns0:status></ns0:propstat></ns0:response><ns0:response><ns0:href>/base/sub/</ns0:href><ns0:propstat><ns0:prop><ns0:resourcetype><ns0:collection /></ns0:resourcetype></ns0:prop><ns0:status>HTTP/1.1 200 OK</ns0:status></ns0:propstat></ns0:response><ns0:response><ns0:href>/base/sub/deep.txt</ns0:href><ns0:propstat><ns0:prop><ns0:resourcetype /><ns0:getcontentlength>4</ns0:getcontentlength></ns0:prop><ns0:status>HTTP/1.1 200 OK</ns0:status></ns0:propstat><ns0:propstat><ns0:prop><ns0:getetag/></ns0:prop><ns0:status>HTTP/1.1 404 Not Found</ns0:status></ns0:propstat></ns0:response></ns0:multistatus>"#;

    const RCLONE: &str = r#"<?xml version="1.0" encoding="UTF-8"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/base/m.tmp</D:href><D:propstat><D:prop><D:getcontentlength>3</D:getcontentlength><D:getetag>"16345785d8a000003"</D:getetag><D:resourcetype></D:resourcetype><D:getlastmodified>Sun, 13 Sep 2020 12:26:40 GMT</D:getlastmodified></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#;

    fn inner(endpoint: &str) -> Inner {
        install_transport();
        let (origin, base_raw) = parse_endpoint(endpoint).unwrap();
        Inner {
            client: reqwest::Client::new(),
            op: Operator::new(opendal::services::Webdav::default().endpoint(&origin)).unwrap(),
            base_decoded: String::from_utf8_lossy(&percent_decode(&base_raw)).into_owned(),
            origin,
            base_raw,
            user: String::new(),
            password: String::new(),
            probes: OnceLock::new(),
            depth: AtomicU8::new(DEPTH_UNKNOWN),
            generation: AtomicU64::new(0),
            prefetched: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn multistatus_answers_of_both_servers_parse_alike() {
        let m = parse_multistatus(WSGIDAV).unwrap();
        assert_eq!(m.items.len(), 4);
        assert!(m.items[0].dir && m.items[2].dir && !m.items[1].dir);
        assert_eq!(m.items[1].href, "/base/a%20b%26c.txt");
        assert_eq!((m.items[1].size, m.items[1].mtime), (3, Some(1_796_286_660)));
        assert_eq!(m.items[1].etag.as_deref(), Some("10011033-1796286660-3"));
        assert_eq!(
            (m.items[3].size, m.items[3].etag.as_deref()),
            (4, None),
            "a 404 propstat is ignored"
        );
        assert!(m.any_failed);
        let r = parse_multistatus(RCLONE).unwrap();
        assert_eq!(r.items[0].mtime, Some(1_600_000_000));
        assert_eq!(etag_version(Some("\"16345785d8a000003\"")), etag_version(Some("16345785d8a000003")));
        assert!(parse_multistatus("<html>no</html>").is_err());
    }

    #[test]
    fn hrefs_map_to_paths_below_the_base_only() {
        let i = inner("http://127.0.0.1:1/base%20x/");
        assert_eq!(i.base_raw, "/base%20x/");
        assert_eq!(i.href_rel("/base%20x/").unwrap().unwrap(), "");
        assert_eq!(i.href_rel("/base x").unwrap().unwrap(), "");
        assert_eq!(i.href_rel("//base%20x/a/b%26.txt").unwrap().unwrap(), "a/b&.txt");
        assert_eq!(i.href_rel("http://other:80/base%20x/a/").unwrap().unwrap(), "a");
        assert!(i.href_rel("/other/a").is_none());
        assert!(i.href_rel("/base%20xy/a").is_none());
        assert_eq!(
            i.url(&RelPath::new("a b/c#?.txt").unwrap(), false),
            "http://127.0.0.1:1/base%20x/a%20b/c%23%3F.txt"
        );
        assert_eq!(i.describe(&RelPath::new("a b/c").unwrap()), "http://127.0.0.1:1/base%20x/a b/c");
        assert_eq!(i.describe(&RelPath::root()), "http://127.0.0.1:1/base%20x");
        let groups = i
            .group(
                &RelPath::root(),
                parse_multistatus(&WSGIDAV.replace("/base/", "/base%20x/")).unwrap().items,
            )
            .unwrap();
        assert_eq!(groups[""].len(), 2);
        assert_eq!(groups["sub"].len(), 1);
    }

    #[test]
    fn endpoints_with_credentials_or_dot_dot_are_refused_without_echoing_the_password() {
        let e = parse_endpoint("https://u:hunter22@h/x").unwrap_err();
        assert!(!e.to_string().contains("hunter22") && e.to_string().contains("https://h/x"), "{e}");
        assert!(parse_endpoint("ftp://h/x").is_err());
        assert!(parse_endpoint("http://h/a/../b").is_err());
        assert_eq!(parse_endpoint("http://h:8080").unwrap(), ("http://h:8080".into(), "/".into()));
        assert_eq!(parse_endpoint("HTTP://h/a/b/").unwrap(), ("http://h".into(), "/a/b/".into()));
        assert_eq!(decode_entities("a&amp;b&#x41;&#66;&bogus"), "a&bAB&bogus");
        assert_eq!(http_date(PROBE_OC_MTIME), "Fri, 13 Feb 2009 23:31:30 GMT");
        assert_eq!(parse_http_date(&http_date(PROBE_OC_MTIME)), Some(PROBE_OC_MTIME));
    }
}
