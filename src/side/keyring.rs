//! Secrets in the operating system's credential store: the entry of service `tandem`,
//! account NAME, that a `keyring = "NAME"` option names (`[remote]`, `[pair.remote]`,
//! `[email]`) and that `tandem secret set|check|delete NAME` manages. The store is the
//! Windows Credential Manager (generic credential `NAME.tandem`, persisted for this user on
//! this machine), the macOS Keychain, and elsewhere on Unix the Secret Service on the D-Bus
//! session bus (GNOME Keyring, KWallet), spoken through zbus in pure Rust. The kernel's
//! keyutils are not used: they forget every entry at reboot.
//!
//! A store is opened for each call and dropped after it, so a keyring that was locked or
//! not yet running when the service started is found on the next try, not never. Errors
//! name the entry (`keyring entry "tandem/NAME"`) and what to do.
//!
//! Must not touch: the secret in any error, log or `Debug` output (the store's own errors
//! that can carry the stored bytes are turned into fixed texts here); any entry of
//! another service.

use keyring_core::api::CredentialStore;
use keyring_core::{Entry, Error};
use std::io;
use std::sync::Arc;

/// The service every Tandem entry is stored under; the account is the entry's name.
pub const SERVICE: &str = "tandem";

/// The longest entry name: short enough for every store's limits (Windows allows 512
/// characters for a whole target name).
const MAX_NAME: usize = 64;

/// The longest secret `set` stores: the Windows Credential Manager holds at most 2,560
/// bytes, which is 1,280 characters in the UTF-16 its store writes.
pub const MAX_SECRET: usize = 1280;

/// What the store on this machine is, for messages.
pub const STORE: &str = if cfg!(windows) {
    "the Windows Credential Manager"
} else if cfg!(target_os = "macos") {
    "the macOS Keychain"
} else {
    "the Secret Service (GNOME Keyring, KWallet) on the D-Bus session bus"
};

/// How an entry is called in messages: `tandem/NAME`.
pub fn describe(name: &str) -> String {
    format!("{SERVICE}/{name}")
}

/// Whether `name` may name an entry: 1 to 64 ASCII letters, digits and `.`, `_`, `-`,
/// `@`, `+`. The error says what is allowed (for the config's and the CLI's messages).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-@+".contains(c);
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(ok) {
        return Err(format!(
            "an entry name of 1 to {MAX_NAME} letters, digits, '.', '_', '-', '@' or '+' (e.g. \"pcloud\")"
        ));
    }
    Ok(())
}

/// The secret stored under `name`. `NotFound` when there is no such entry; `Unsupported`
/// when this machine has no usable store; `PermissionDenied` when it is locked.
pub fn get(name: &str) -> io::Result<String> {
    let entry = entry(name)?;
    entry.get_password().map_err(|e| error(name, "read", e))
}

/// Store `secret` under `name`, replacing what was there.
pub fn set(name: &str, secret: &str) -> io::Result<()> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("keyring entry {:?}: {why}", describe(name)));
    if secret.is_empty() {
        return Err(invalid("the secret is empty: nothing stored"));
    }
    if secret.chars().count() > MAX_SECRET {
        return Err(invalid(&format!(
            "the secret is longer than {MAX_SECRET} characters: nothing stored"
        )));
    }
    let entry = entry(name)?;
    entry.set_password(secret).map_err(|e| error(name, "store", e))
}

/// Remove the entry `name`; false when there was none.
pub fn delete(name: &str) -> io::Result<bool> {
    let entry = entry(name)?;
    match entry.delete_credential() {
        Ok(()) => Ok(true),
        Err(Error::NoEntry) => Ok(false),
        Err(e) => Err(error(name, "delete", e)),
    }
}

/// Whether the entry `name` exists (its secret is not read).
pub fn exists(name: &str) -> io::Result<bool> {
    let entry = entry(name)?;
    match entry.get_credential() {
        Ok(_) => Ok(true),
        Err(Error::NoEntry) => Ok(false),
        Err(e) => Err(error(name, "look it up", e)),
    }
}

/// The entry `tandem/NAME` in a store opened now.
fn entry(name: &str) -> io::Result<Entry> {
    check_name(name).map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, format!("keyring entry name {name:?}: expected {why}")))?;
    let store = open_store().map_err(|e| {
        let detail = match e {
            Error::PlatformFailure(p) | Error::NoStorageAccess(p) => format!(": {p}"),
            Error::NotSupportedByStore(why) => format!(": {why}"),
            _ => String::new(),
        };
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "keyring entry {:?}: no keyring available on this machine: cannot reach {STORE}{detail}",
                describe(name)
            ),
        )
    })?;
    Entry::new_in_store_with_modifiers(&store, SERVICE, name, &modifiers()).map_err(|e| error(name, "open", e))
}

/// The Windows Credential Manager: persisted for this user on this machine (not roaming
/// with a domain profile, which the store's default would do).
#[cfg(windows)]
fn modifiers() -> std::collections::HashMap<&'static str, &'static str> {
    std::collections::HashMap::from([("persistence", "Local")])
}

#[cfg(not(windows))]
fn modifiers() -> std::collections::HashMap<&'static str, &'static str> {
    std::collections::HashMap::new()
}

#[cfg(windows)]
fn open_store() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(windows_native_keyring_store::Store::new()?)
}

#[cfg(target_os = "macos")]
fn open_store() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(apple_native_keyring_store::keychain::Store::new()?)
}

#[cfg(all(unix, not(any(target_os = "macos", target_os = "ios", target_os = "android"))))]
fn open_store() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(zbus_secret_service_keyring_store::Store::new()?)
}

#[cfg(not(any(windows, all(unix, not(any(target_os = "ios", target_os = "android"))))))]
fn open_store() -> keyring_core::Result<Arc<CredentialStore>> {
    Err(Error::NotSupportedByStore("Tandem has no credential store for this system".into()))
}

/// A store's error as an `io::Error` naming the entry, never its content: the variants
/// that carry the stored bytes (`BadEncoding`, `BadDataFormat`) get fixed texts. `verb`
/// is what was tried ("read", "store").
fn error(name: &str, verb: &str, e: Error) -> io::Error {
    use io::ErrorKind as K;
    let entry = describe(name);
    let again = format!("store it again with `tandem secret set {name}`");
    let (kind, why) = match e {
        Error::NoEntry => {
            return io::Error::new(
                K::NotFound,
                format!("keyring entry {entry:?} not found: store it with `tandem secret set {name}`"),
            )
        }
        Error::NoStorageAccess(p) => (K::PermissionDenied, format!("the keyring is locked or refuses access ({p})")),
        Error::PlatformFailure(p) => (K::Other, format!("{STORE} failed: {p}")),
        Error::BadEncoding(_) => (K::InvalidData, format!("it holds no text (not UTF-8): {again}")),
        Error::BadDataFormat(..) => (K::InvalidData, format!("it is malformed in the store: {again}")),
        Error::BadStoreFormat(why) => (K::InvalidData, format!("the store is malformed: {why}")),
        Error::TooLong(what, limit) => (K::InvalidInput, format!("the {what} is longer than the store's limit of {limit}")),
        Error::Invalid(what, why) => (K::InvalidInput, format!("the store refuses the {what}: {why}")),
        Error::Ambiguous(found) => (
            K::InvalidData,
            format!(
                "{} items in the keyring match it: delete them (`tandem secret delete {name}` until it says not found), then store it again",
                found.len()
            ),
        ),
        Error::NoDefaultStore | Error::NotSupportedByStore(_) => (K::Unsupported, format!("{STORE} does not support it")),
        _ => (K::Other, format!("{STORE} failed")),
    };
    io::Error::new(kind, format!("keyring entry {entry:?}: cannot {verb}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_plain_words() {
        for good in ["pcloud", "me@example.org", "s3.wasabi_eu-1", "a+b", "x"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "has space", "a/b", "tab\t", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_entry_and_never_the_stored_bytes() {
        let planted = b"planted-secret-value".to_vec();
        for e in [
            Error::BadEncoding(planted.clone()),
            Error::BadDataFormat(planted.clone(), "bad".into()),
        ] {
            let m = error("pcloud", "read", e).to_string();
            assert!(m.contains("\"tandem/pcloud\""), "{m}");
            assert!(!m.contains("planted") && !m.contains("112, 108"), "{m}");
        }
        let missing = error("pcloud", "read", Error::NoEntry);
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            missing.to_string(),
            "keyring entry \"tandem/pcloud\" not found: store it with `tandem secret set pcloud`"
        );
    }

    #[test]
    fn set_refuses_empty_and_overlong_secrets_before_opening_a_store() {
        let e = set("pcloud", "").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = set("pcloud", &"s".repeat(MAX_SECRET + 1)).unwrap_err();
        assert!(e.to_string().contains("longer than 1280"), "{e}");
        let e = get("not a name").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
