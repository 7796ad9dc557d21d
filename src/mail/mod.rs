//! Email notifications (lettre over SMTP): which mails a run, a guard stop or a day of runs
//! calls for (by the `[email]` granularity), the persistent outgoing queue (state store,
//! retried with backoff, never lost across a restart), and sending. A failing or slow mail
//! server is logged and retried; it never blocks or breaks syncing: callers only enqueue,
//! and `flush` runs apart (the service's mailer thread, or once after a one-shot sync).
//! Header injection is impossible: file names go in the body only, and every header value
//! is stripped of control characters. Must not touch: the synced folders, the planner.

use crate::config::{EmailConfig, MailGranularity, SmtpSecurity};
use crate::engine::plan::Action;
use crate::engine::sync::{ApiError, SyncReport};
use crate::model::{fmt_time, Entry, Side};
use crate::state::{now_ns, RunRow, Store};
use std::time::Duration;

/// A mail to queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Mail {
    pub kind: &'static str,
    pub subject: String,
    pub body: String,
}

/// Header values: no control characters (a newline would start a new header).
pub fn clean_header(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The SMTP password: from the OS keyring entry `tandem/NAME` (`keyring`), the
/// environment variable or the file (which must not be readable by others). None: no
/// authentication.
pub fn password(cfg: &EmailConfig) -> Result<Option<String>, String> {
    if let Some(name) = &cfg.keyring {
        return crate::side::keyring::get(name).map(Some).map_err(|e| format!("email.keyring: {e}"));
    }
    if let Some(var) = &cfg.password_env {
        return std::env::var(var)
            .map(Some)
            .map_err(|_| format!("email.password_env: the environment variable {var} is not set"));
    }
    if let Some(file) = &cfg.password_file {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let md = std::fs::metadata(file).map_err(|e| format!("email.password_file {}: {e}", file.display()))?;
            if md.mode() & 0o077 != 0 {
                return Err(format!(
                    "email.password_file {}: readable by others (mode {:o}); run chmod 600 on it",
                    file.display(),
                    md.mode() & 0o777
                ));
            }
        }
        // Windows: its access list (the message names the file, who else may read it, the fix).
        #[cfg(windows)]
        crate::side::win::check_private(file).map_err(|e| format!("email.password_file {e}"))?;
        let text = std::fs::read_to_string(file).map_err(|e| format!("email.password_file {}: {e}", file.display()))?;
        return Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()));
    }
    Ok(None)
}

/// Send the test mail (`tandem notify-test`, the settings page's "Send a test mail").
pub fn send_test(cfg: &EmailConfig) -> Result<(), String> {
    send(
        cfg,
        "test mail",
        "This is a test mail from Tandem. If you can read it, mail notifications work.\n",
    )
}

/// Send one mail now. The error says what failed (settings, connection, server answer).
pub fn send(cfg: &EmailConfig, subject: &str, body: &str) -> Result<(), String> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{Message, SmtpTransport, Transport};
    if cfg.to.is_empty() {
        return Err("email.to: no recipient configured".into());
    }
    let from = cfg.from.parse().map_err(|e| format!("email.from {:?}: {e}", cfg.from))?;
    let mut m = Message::builder().from(from);
    for to in &cfg.to {
        m = m.to(to.parse().map_err(|e| format!("email.to {to:?}: {e}"))?);
    }
    let subject = clean_header(&format!("{} {}", cfg.subject_prefix, subject));
    let msg = m
        .subject(subject.trim())
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .map_err(|e| format!("cannot build the mail: {e}"))?;
    let builder = match cfg.security {
        SmtpSecurity::None => SmtpTransport::builder_dangerous(&cfg.host),
        SmtpSecurity::Starttls => SmtpTransport::starttls_relay(&cfg.host).map_err(|e| format!("email.host {:?}: {e}", cfg.host))?,
        SmtpSecurity::Tls => SmtpTransport::relay(&cfg.host).map_err(|e| format!("email.host {:?}: {e}", cfg.host))?,
    };
    let mut builder = builder.port(cfg.port).timeout(Some(Duration::from_secs(10)));
    if let Some(user) = &cfg.username {
        let pw = password(cfg)?.ok_or("email.username is set but none of keyring, password_env and password_file")?;
        builder = builder.credentials(Credentials::new(user.clone(), pw));
    }
    builder
        .build()
        .send(&msg)
        .map(|_| ())
        .map_err(|e| format!("sending through {}:{} failed: {e}", cfg.host, cfg.port))
}

fn describe(e: Option<&Entry>) -> String {
    match e {
        Some(e) if e.is_dir() => "a folder".into(),
        Some(e) => format!("{} bytes, modified {}", e.size, fmt_time(e.mtime)),
        None => "absent".into(),
    }
}

fn newer_text(n: Option<Side>) -> &'static str {
    match n {
        Some(Side::Left) => "left",
        Some(Side::Right) => "right",
        None => "neither (same time)",
    }
}

/// Mails a finished run calls for. `previous_failed`: the pair's run before this one had
/// failures too (repeated failures always mail, whatever the granularity).
pub fn mails_for_run(cfg: &EmailConfig, rep: &SyncReport, trigger: &str, previous_failed: bool) -> Vec<Mail> {
    let mut out = Vec::new();
    let pair = &rep.pair;
    if cfg.granularity.contains(&MailGranularity::PerConflict) {
        for (i, a) in rep.plan.actions.iter().enumerate() {
            let (path, rule, left, right, newer, action) = match a {
                Action::Conflict {
                    path,
                    rule,
                    left,
                    right,
                    newer,
                } => (
                    path,
                    rule,
                    left.as_ref(),
                    right.as_ref(),
                    *newer,
                    "nothing touched: waiting for your decision".to_string(),
                ),
                Action::ClashRename {
                    side,
                    from,
                    to,
                    expect,
                    rule,
                    ..
                } if matches!(rep.outcomes.get(i), Some(Some(crate::engine::exec::Outcome::Done { .. }))) => {
                    // The winner is what the plan copies over the name on the loser's side.
                    let winner = rep.plan.actions.iter().find_map(|b| match b {
                        Action::Copy { side: s, path, src, .. } if s == side && path == from => Some(src),
                        _ => None,
                    });
                    let (l, r) = if *side == Side::Left {
                        (Some(expect), winner)
                    } else {
                        (winner, Some(expect))
                    };
                    (
                        from,
                        rule,
                        l,
                        r,
                        Some(side.other()),
                        format!("the {side} version was kept as {to} on both sides; the newer keeps the name"),
                    )
                }
                _ => continue,
            };
            out.push(Mail {
                kind: "conflict",
                subject: format!("conflict in {pair}: {}", clean_header(path.as_str())),
                body: format!(
                    "Pair: {pair}\nPath: {path}\nRule: {}\nNewer side: {}\nLeft:  {}\nRight: {}\nAction: {action}\n",
                    rule.name(),
                    newer_text(newer),
                    describe(left),
                    describe(right),
                ),
            });
        }
    }
    let c = &rep.counts;
    let did_something = rep.plan.actions.iter().any(|a| a.is_disk_action()) || c.failed > 0 || c.conflicts > 0;
    // Runs started by file events and polls come every few seconds: a mail each would bury
    // the reader. They are in the daily digest; the summary is for scheduled, manual,
    // startup, reconciliation and resolve runs.
    let continuous = matches!(trigger, "watch" | "poll");
    if cfg.granularity.contains(&MailGranularity::Summary) && did_something && !continuous {
        out.push(Mail {
            kind: "summary",
            subject: format!("{pair}: {} copied, {} failed", c.copied, c.failed),
            body: summary_body(pair, trigger, rep),
        });
    }
    if c.failed > 0 && previous_failed {
        let failures: Vec<String> = rep
            .plan
            .actions
            .iter()
            .zip(&rep.outcomes)
            .filter_map(|(a, o)| match o {
                Some(crate::engine::exec::Outcome::Failed { error }) => Some(format!("  {}: {error}", a.path())),
                _ => None,
            })
            .collect();
        out.push(Mail {
            kind: "failures",
            subject: format!("{pair}: operations keep failing ({} in the last run)", c.failed),
            body: format!(
                "Pair: {pair}\nThe last two runs had failures. Failed in the last run:\n{}\n",
                failures.join("\n")
            ),
        });
    }
    out
}

fn summary_body(pair: &str, trigger: &str, rep: &SyncReport) -> String {
    let c = &rep.counts;
    let by_rule: Vec<String> = c.by_rule.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!(
        "Pair: {pair}\nRun: {} ({trigger})\nStatus: {:?}\nCopied: {}\nRenamed: {}\nDeleted: {}\nSoft-deleted (to the trash): {}\nProperties: {}\nConflicts: {}\nBy rule: {}\nFailed: {}\nBytes: {}\nDuration: {:.1} s\n",
        rep.run_id.map(|r| format!("#{r}")).unwrap_or_default(),
        rep.status,
        c.copied,
        c.renamed,
        c.deleted,
        c.trashed,
        c.props,
        c.conflicts,
        if by_rule.is_empty() { "-".into() } else { by_rule.join(", ") },
        c.failed,
        c.bytes,
        rep.duration_ms as f64 / 1000.0,
    )
}

/// A safety guard stopped or paused a pair: always mailed.
pub fn guard_mail(pair: &str, e: &ApiError) -> Mail {
    Mail {
        kind: "guard",
        subject: format!("{pair}: stopped by a safety guard ({})", e.code()),
        body: format!("Pair: {pair}\nCode: {}\n\n{e}\n", e.code()),
    }
}

/// The daily digest of the runs since the last one (None: nothing happened).
pub fn digest_mail(runs: &[RunRow]) -> Option<Mail> {
    let busy: Vec<&RunRow> = runs.iter().filter(|r| !r.dry_run).collect();
    if busy.is_empty() {
        return None;
    }
    let mut lines = Vec::new();
    let (mut copied, mut failed, mut conflicts, mut bytes) = (0, 0, 0, 0);
    for r in &busy {
        let c = &r.counts;
        copied += c.copied;
        failed += c.failed;
        conflicts += c.conflicts;
        bytes += c.bytes;
        lines.push(format!(
            "#{} {} {} ({}) {}: copied {}, renamed {}, deleted {}, trashed {}, conflicts {}, failed {}, {} bytes",
            r.id,
            fmt_time(r.started_at),
            r.pair,
            r.trigger,
            r.status,
            c.copied,
            c.renamed,
            c.deleted,
            c.trashed,
            c.conflicts,
            c.failed,
            c.bytes
        ));
    }
    Some(Mail {
        kind: "digest",
        subject: format!(
            "daily digest: {} runs, {copied} copied, {conflicts} conflicts, {failed} failed",
            busy.len()
        ),
        body: format!(
            "Runs: {}\nCopied: {copied}\nConflicts: {conflicts}\nFailed: {failed}\nBytes: {bytes}\n\n{}\n",
            busy.len(),
            lines.join("\n")
        ),
    })
}

pub fn enqueue(store: &Store, mails: &[Mail]) {
    for m in mails {
        if let Err(e) = store.mail_put(m.kind, &m.subject, &m.body) {
            tracing::error!("cannot queue a mail ({}): {e}", m.subject);
        }
    }
}

/// Send what is due; a failure waits 2^n s (at most 10 min) before the next try.
/// Returns (sent, failed).
pub fn flush(store: &Store, cfg: &EmailConfig) -> (u32, u32) {
    let (mut sent, mut failed) = (0, 0);
    let due = match store.mail_due(now_ns()) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("cannot read the mail queue: {e}");
            return (0, 0);
        }
    };
    for (id, _kind, subject, body, attempts) in due {
        match send(cfg, &subject, &body) {
            Ok(()) => {
                sent += 1;
                let _ = store.mail_sent(id);
            }
            Err(e) => {
                failed += 1;
                let wait = Duration::from_secs((1u64 << attempts.min(10)).min(600));
                tracing::warn!(
                    "mail {subject:?} not sent (attempt {}), retrying in {} s: {e}",
                    attempts + 1,
                    wait.as_secs()
                );
                let _ = store.mail_failed(id, now_ns() + wait.as_nanos() as i64, &e);
                // The server is down: the rest waits for the next round.
                break;
            }
        }
    }
    (sent, failed)
}

/// After a run: queue the mails it calls for.
pub fn after_run(store: &Store, cfg: Option<&EmailConfig>, pair_id: i64, rep: &SyncReport, trigger: &str) {
    let Some(cfg) = cfg else { return };
    let previous_failed = rep.counts.failed > 0
        && store
            .runs(&crate::state::RunFilter {
                limit: Some(2),
                pair_id: Some(pair_id),
                ..Default::default()
            })
            .ok()
            .and_then(|r| r.into_iter().find(|x| Some(x.id) != rep.run_id))
            .is_some_and(|r| r.counts.failed > 0);
    enqueue(store, &mails_for_run(cfg, rep, trigger, previous_failed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_sums_the_day_and_lists_each_run() {
        use crate::state::{RunCounts, RunRow};
        let run = |id, copied, failed, dry_run| RunRow {
            id,
            pair: "docs".into(),
            trigger: "watch".into(),
            dry_run,
            started_at: 1_795_000_000_000_000_000,
            finished_at: Some(1_795_000_001_000_000_000),
            status: "ok".into(),
            counts: RunCounts {
                copied,
                failed,
                bytes: 10 * copied,
                ..Default::default()
            },
            error: None,
        };
        assert_eq!(digest_mail(&[]), None);
        assert_eq!(digest_mail(&[run(1, 5, 0, true)]), None, "dry runs are not activity");
        let m = digest_mail(&[run(1, 3, 0, false), run(2, 4, 1, false), run(3, 9, 0, true)]).unwrap();
        assert_eq!(m.kind, "digest");
        assert_eq!(m.subject, "daily digest: 2 runs, 7 copied, 0 conflicts, 1 failed");
        assert!(m.body.contains("Bytes: 70"), "{}", m.body);
        assert!(
            m.body.contains("#1 ") && m.body.contains("#2 ") && !m.body.contains("#3 "),
            "{}",
            m.body
        );
    }

    #[test]
    fn header_values_lose_control_characters() {
        assert_eq!(clean_header("a\r\nBcc: x@y.z"), "a  Bcc: x@y.z");
        assert_eq!(clean_header("plain – ünïcode"), "plain – ünïcode");
    }

    #[test]
    fn a_password_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "hunter2\n").unwrap();
        let cfg = EmailConfig {
            host: "localhost".into(),
            port: 25,
            security: SmtpSecurity::None,
            username: Some("u".into()),
            password_env: None,
            password_file: Some(pw.clone()),
            keyring: None,
            from: "t@localhost".into(),
            to: vec![],
            subject_prefix: String::new(),
            granularity: vec![],
        };
        #[cfg(unix)]
        let (open, owner_only, fix) = {
            use std::os::unix::fs::PermissionsExt;
            let set = |mode| std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(mode)).unwrap();
            (move || set(0o644), move || set(0o600), "chmod 600")
        };
        #[cfg(windows)]
        let (open, owner_only, fix) = (
            || crate::side::win::set_dacl(&pw, "D:P(A;;FA;;;SY)(A;;FR;;;WD)").unwrap(),
            || crate::side::win::make_private(&pw).unwrap(),
            "icacls",
        );
        open();
        let e = password(&cfg).unwrap_err();
        assert!(
            e.starts_with("email.password_file") && e.contains(fix) && !e.contains("hunter2"),
            "{e}"
        );
        owner_only();
        assert_eq!(password(&cfg).unwrap().as_deref(), Some("hunter2"));
    }
}
