//! Locations that are not folders: parsing `s3://BUCKET/PREFIX`,
//! `webdav://[USER@]HOST[:PORT]/PATH` (HTTPS) and `webdav+http://...` (plain HTTP, e.g. a
//! server on loopback), finding their endpoint and
//! credentials, and opening their sides; [`Connecting`] keeps a long-running service's
//! remote side usable across an unreachable server (it connects on first use and again
//! after a failure).
//!
//! Secrets (an S3 secret key, a WebDAV password) are never part of a configuration value:
//! [`RemoteOptions`] names only where one comes from, at most one of: an entry in the OS
//! credential store (`keyring = "NAME"`: service `tandem`, account NAME, see
//! [`super::keyring`]; stored with `tandem secret set NAME`), a file readable by its owner
//! alone (`secret_file`: mode 0600 or stricter on Unix; on Windows an ACL that lets no
//! other account but SYSTEM and Administrators read or write it) or an environment variable
//! (`secret_env`); with none of them, the usual variable (`AWS_SECRET_ACCESS_KEY`,
//! `TANDEM_WEBDAV_PASSWORD`). The secret is read when the side connects (again at each
//! reconnection, so a keyring unlocked later is found) and handed to it; it appears in no
//! message: errors name the option, the entry, the file or the variable.
//!
//! Must not touch: a secret in any error, log or `Debug` output; anything but the one
//! entry, file or variable the options name.

use super::s3::{S3Config, S3Side};
use super::{Caps, ChangeSource, DirItem, FileWriter, KeepVersion, Node, Replica, VersionToken};
use crate::model::RelPath;
use serde::{Deserialize, Serialize};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How a remote side is reached, from a pair's `[pair.remote]` table (or the top-level
/// `[remote]`): never the secret itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteOptions {
    /// The server (`https://s3.eu-central-1.wasabisys.com`, `http://127.0.0.1:9000`);
    /// S3 only, else `AWS_ENDPOINT_URL`, else AWS itself.
    pub endpoint: Option<String>,
    /// S3 only; else `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// The S3 access key id or the WebDAV user (a user in the URL wins); else
    /// `AWS_ACCESS_KEY_ID` for S3.
    pub user: Option<String>,
    /// A file holding the secret, readable by its owner only.
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the secret.
    pub secret_env: Option<String>,
    /// The name of an entry in the OS credential store (service `tandem`, account this
    /// name) holding the secret.
    pub keyring: Option<String>,
}

/// A location as a user writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
    },
    /// `url` is `http[s]://HOST[:PORT]/PATH`, without the user.
    WebDav {
        url: String,
        user: Option<String>,
    },
}

/// The URL schemes a location may have; anything else is a path.
pub const SCHEMES: [&str; 3] = ["s3", "webdav", "webdav+http"];

/// Whether a configured location is a URL (`SCHEME://...`), not a folder. An unknown
/// scheme is a URL too, so a typo is an error rather than a folder named `webdavs:`.
pub fn is_remote(location: &Path) -> bool {
    let s = location.to_string_lossy();
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.len() > 1
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Parse a location: a URL with one of [`SCHEMES`], else a folder path.
pub fn parse_location(location: &Path) -> io::Result<Location> {
    if !is_remote(location) {
        return Ok(Location::Local(location.to_path_buf()));
    }
    let s = location.to_string_lossy();
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{s}: {why}"));
    let (scheme, rest) = s.split_once("://").unwrap();
    if !SCHEMES.contains(&scheme) {
        return Err(bad(
            "unknown kind of location: expected a folder, s3://, webdav:// or webdav+http://",
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("a location has no query or fragment"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if scheme == "s3" {
        if authority.is_empty() || authority.contains(['@', ':']) {
            return Err(bad(
                "expected s3://BUCKET/PREFIX (the endpoint and credentials go in [pair.remote])",
            ));
        }
        if path.split('/').any(|c| c == "." || c == "..") {
            return Err(bad("the prefix may not contain . or .."));
        }
        return Ok(Location::S3 {
            bucket: authority.to_string(),
            prefix: path.trim_matches('/').to_string(),
        });
    }
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, _)) if u.contains(':') => {
            return Err(bad("a password does not go in the URL: use keyring, password_file or password_env"))
        }
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(bad("expected webdav://[USER@]HOST[:PORT]/PATH"));
    }
    if path.split('/').any(|c| c == "." || c == "..") {
        return Err(bad("the path may not contain . or .."));
    }
    let http = if scheme == "webdav+http" { "http" } else { "https" };
    Ok(Location::WebDav {
        url: format!("{http}://{host}/{}", path.trim_end_matches('/')),
        user,
    })
}

/// Whether a file may hold a secret: a regular file no one but its owner can read or write.
#[cfg(unix)]
fn check_private(path: &Path, md: &std::fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = md.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let fix = format!("chmod 600 {}", path.display());
        return Err(super::win::not_private(path, &format!("it is {mode:04o}"), &fix));
    }
    Ok(())
}

/// Windows: the same rule on the file's access list (only its owner, this user, SYSTEM and
/// the administrators may read or write it).
#[cfg(windows)]
fn check_private(path: &Path, _md: &std::fs::Metadata) -> io::Result<()> {
    super::win::check_private(path)
}

/// The secret for `place`: from the keyring entry `keyring`, the file `secret_file` or
/// the variable `secret_env` (at most one of them is set), else the variable
/// `default_env`. `Ok(None)` when none is set.
fn secret(place: &str, o: &RemoteOptions, default_env: &str) -> io::Result<Option<String>> {
    let sources = [o.keyring.is_some(), o.secret_file.is_some(), o.secret_env.is_some()];
    if sources.iter().filter(|set| **set).count() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{place}: set only one of keyring, secret_file and secret_env (where the secret is)"),
        ));
    }
    if let Some(name) = &o.keyring {
        return super::keyring::get(name)
            .map(Some)
            .map_err(|e| io::Error::new(e.kind(), format!("{place} (keyring = {name:?}): {e}")));
    }
    if let Some(f) = &o.secret_file {
        let md = std::fs::metadata(f).map_err(|e| io::Error::new(e.kind(), format!("{}: secret file for {place}: {e}", f.display())))?;
        if !md.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: the secret file is not a file", f.display()),
            ));
        }
        check_private(f, &md)?;
        let text = std::fs::read_to_string(f).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", f.display())))?;
        let s = text.trim_end_matches(['\n', '\r']).to_string();
        if s.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: the secret file is empty", f.display()),
            ));
        }
        return Ok(Some(s));
    }
    let var = o.secret_env.as_deref().unwrap_or(default_env);
    match std::env::var(var) {
        Ok(s) if !s.is_empty() => Ok(Some(s)),
        _ if o.secret_env.is_some() => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{place}: the environment variable {var} (secret_env) is not set"),
        )),
        _ => Ok(None),
    }
}

fn env_first(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// Open the side a configured location names: a folder, or a server (connecting to it,
/// which checks the credentials and probes what it can do).
pub fn open_location(location: &Path, o: &RemoteOptions) -> io::Result<Arc<dyn Replica>> {
    let place = location.to_string_lossy().into_owned();
    match parse_location(location)? {
        Location::Local(p) => Ok(Arc::new(super::local::LocalSide::new(p))),
        Location::S3 { bucket, prefix } => {
            let access_key = o.user.clone().or_else(|| env_first(&["AWS_ACCESS_KEY_ID"])).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{place}: no access key id: set user in [pair.remote] or AWS_ACCESS_KEY_ID"),
                )
            })?;
            let secret_key = secret(&place, o, "AWS_SECRET_ACCESS_KEY")?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{place}: no secret key: set keyring, secret_file or secret_env in [pair.remote], or AWS_SECRET_ACCESS_KEY"),
                )
            })?;
            let side = S3Side::connect(S3Config {
                endpoint: o
                    .endpoint
                    .clone()
                    .or_else(|| env_first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]))
                    .unwrap_or_default(),
                region: o
                    .region
                    .clone()
                    .or_else(|| env_first(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
                    .unwrap_or_default(),
                bucket,
                prefix,
                access_key,
                secret_key,
            })?;
            Ok(Arc::new(side))
        }
        Location::WebDav { url, user } => open_webdav(&place, url, user.or_else(|| o.user.clone()), o),
    }
}

fn open_webdav(place: &str, url: String, user: Option<String>, o: &RemoteOptions) -> io::Result<Arc<dyn Replica>> {
    let password = secret(place, o, "TANDEM_WEBDAV_PASSWORD")?;
    if user.is_some() && password.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{place}: no password: set keyring, password_file or password_env in [pair.remote], or TANDEM_WEBDAV_PASSWORD"),
        ));
    }
    let side = super::webdav::WebDavSide::connect(super::webdav::WebDavConfig {
        endpoint: url,
        user: user.unwrap_or_default(),
        password: password.unwrap_or_default(),
    })?;
    Ok(Arc::new(side))
}

/// How long a failed connection is remembered before the next use tries again.
const RETRY_CONNECT: Duration = Duration::from_secs(10);

/// A remote side that connects on first use, and again after a failure (at most every
/// [`RETRY_CONNECT`]): a service started while the network or the server is down keeps
/// running, its runs fail naming the reason, and it syncs as soon as the server answers.
pub struct Connecting {
    location: PathBuf,
    options: RemoteOptions,
    side: OnceLock<Arc<dyn Replica>>,
    failed: Mutex<Option<(Instant, io::ErrorKind, String)>>,
}

impl Connecting {
    pub fn new(location: &Path, options: &RemoteOptions) -> Connecting {
        Connecting {
            location: location.to_path_buf(),
            options: options.clone(),
            side: OnceLock::new(),
            failed: Mutex::new(None),
        }
    }

    fn get(&self) -> io::Result<&Arc<dyn Replica>> {
        if let Some(s) = self.side.get() {
            return Ok(s);
        }
        let mut failed = self.failed.lock().unwrap();
        if let Some(s) = self.side.get() {
            return Ok(s);
        }
        if let Some((at, kind, msg)) = &*failed {
            if at.elapsed() < RETRY_CONNECT {
                return Err(io::Error::new(*kind, msg.clone()));
            }
        }
        match open_location(&self.location, &self.options) {
            Ok(s) => {
                *failed = None;
                Ok(self.side.get_or_init(|| s))
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!("cannot connect: {msg}");
                *failed = Some((Instant::now(), e.kind(), msg));
                Err(e)
            }
        }
    }
}

impl Replica for Connecting {
    /// Before the first connection: what any server allows (no events, no settable
    /// times, whole seconds), so nothing is planned on a capability not yet probed.
    fn caps(&self) -> Caps {
        match self.get() {
            Ok(s) => s.caps(),
            Err(_) => Caps {
                case_insensitive: false,
                mtime_resolution_ns: 1_000_000_000,
                set_mtime: false,
                modes: false,
                ids: false,
                version: VersionToken::None,
                weak_version: false,
                free_hash: None,
                atomic_replace: false,
                keep_version: KeepVersion::Copy,
                needs_flush: false,
                whole_uploads: false,
                cheap_listing: false,
                changes: ChangeSource::Poll,
            },
        }
    }
    fn describe(&self, p: &RelPath) -> String {
        match self.side.get() {
            Some(s) => s.describe(p),
            None if p.is_root() => self.location.to_string_lossy().into_owned(),
            None => format!("{}/{}", self.location.to_string_lossy().trim_end_matches('/'), p),
        }
    }
    fn note(&self) -> Option<String> {
        match self.get() {
            Ok(s) => s.note(),
            Err(e) => Some(format!("not connected: {e}")),
        }
    }
    fn stat(&self, p: &RelPath) -> io::Result<Option<Node>> {
        self.get()?.stat(p)
    }
    fn read_dir(&self, p: &RelPath) -> io::Result<Vec<DirItem>> {
        self.get()?.read_dir(p)
    }
    fn open_read(&self, p: &RelPath) -> io::Result<Box<dyn Read + Send>> {
        self.get()?.open_read(p)
    }
    fn create_new(&self, p: &RelPath) -> io::Result<Box<dyn FileWriter>> {
        self.get()?.create_new(p)
    }
    fn rename(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        self.get()?.rename(from, to)
    }
    fn keep_copy(&self, from: &RelPath, to: &RelPath) -> io::Result<()> {
        self.get()?.keep_copy(from, to)
    }
    fn remove_file(&self, p: &RelPath) -> io::Result<()> {
        self.get()?.remove_file(p)
    }
    fn remove_dir(&self, p: &RelPath) -> io::Result<()> {
        self.get()?.remove_dir(p)
    }
    fn create_dir_all(&self, p: &RelPath) -> io::Result<()> {
        self.get()?.create_dir_all(p)
    }
    fn set_mtime(&self, p: &RelPath, mtime_ns: i64) -> io::Result<()> {
        self.get()?.set_mtime(p, mtime_ns)
    }
    fn set_mode(&self, p: &RelPath, mode: u32) -> io::Result<()> {
        self.get()?.set_mode(p, mode)
    }
    fn make_durable(&self, files: &[RelPath], dirs: &[RelPath]) -> io::Result<()> {
        self.get()?.make_durable(files, dirs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<Location, &str>) {
        let got = parse_location(Path::new(input)).map_err(|e| e.to_string());
        match (got, expect) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "{input}"),
            (Err(g), Err(e)) => assert!(g.contains(e) && g.starts_with(input), "{input}: {g}"),
            (g, e) => panic!("{input}: got {g:?}, expected {e:?}"),
        }
    }

    #[test]
    fn parse_location_takes_folders_s3_and_webdav_urls() {
        let s3 = |b: &str, p: &str| {
            Ok(Location::S3 {
                bucket: b.into(),
                prefix: p.into(),
            })
        };
        let dav = |u: &str, user: Option<&str>| {
            Ok(Location::WebDav {
                url: u.into(),
                user: user.map(Into::into),
            })
        };
        check("/srv/share", Ok(Location::Local("/srv/share".into())));
        check("relative/dir", Ok(Location::Local("relative/dir".into())));
        check("s3://photos", s3("photos", ""));
        check("s3://photos/laptop/2026/", s3("photos", "laptop/2026"));
        check("s3://key:secret@photos/x", Err("[pair.remote]"));
        check("s3:///x", Err("s3://BUCKET/PREFIX"));
        check("s3://b/a/../c", Err(". or .."));
        check(
            "webdav://me@webdav.pcloud.com/Documents/",
            dav("https://webdav.pcloud.com/Documents", Some("me")),
        );
        check("webdav+http://127.0.0.1:8080/", dav("http://127.0.0.1:8080/", None));
        check(
            "webdav://cloud.example.org/remote.php/dav/files/me",
            dav("https://cloud.example.org/remote.php/dav/files/me", None),
        );
        check("webdav://me:hunter2@host/x", Err("a password does not go in the URL"));
        check("webdavs://host/x", Err("unknown kind of location"));
        check("C:\\Users\\me", Ok(Location::Local("C:\\Users\\me".into())));
        check("webdav://h/x?y=1", Err("no query"));
    }

    #[test]
    fn secret_file_must_be_private_and_names_itself_not_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s3.secret");
        std::fs::write(&f, "planted-secret-value\n").unwrap();
        let o = RemoteOptions {
            secret_file: Some(f.clone()),
            ..Default::default()
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = secret("s3://b", &o, "UNUSED").unwrap_err().to_string();
            assert!(e.contains("s3.secret") && e.contains("0644") && e.contains("chmod 600"), "{e}");
            assert!(!e.contains("planted"), "{e}");
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        // Windows: a folder's inherited list may let others read (under wine, a fresh file's
        // mode 0644 does): owner-only, as the check wants.
        #[cfg(windows)]
        crate::side::win::make_private(&f).unwrap();
        assert_eq!(secret("s3://b", &o, "UNUSED").unwrap().as_deref(), Some("planted-secret-value"));
        let missing = RemoteOptions {
            secret_env: Some("TANDEM_TEST_NO_SUCH_VARIABLE".into()),
            ..Default::default()
        };
        let e = secret("s3://b", &missing, "UNUSED").unwrap_err().to_string();
        assert!(e.contains("TANDEM_TEST_NO_SUCH_VARIABLE"), "{e}");
    }

    #[test]
    fn one_place_for_a_secret_and_a_keyring_error_names_the_option_and_the_entry() {
        let two = RemoteOptions {
            secret_env: Some("TANDEM_TEST_NO_SUCH_VARIABLE".into()),
            keyring: Some("pcloud".into()),
            ..Default::default()
        };
        let e = secret("s3://b", &two, "UNUSED").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("only one of keyring, secret_file and secret_env"), "{e}");
        // A keyring error says which option it came from (the store is not asked here:
        // the name is refused first).
        let bad_name = RemoteOptions {
            keyring: Some("not a name".into()),
            ..Default::default()
        };
        let e = secret("s3://b", &bad_name, "UNUSED").unwrap_err().to_string();
        assert!(e.starts_with("s3://b (keyring = \"not a name\"): keyring entry name"), "{e}");
    }
}
