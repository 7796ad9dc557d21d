//! Schedules, mail and history end to end: a real SMTP server on loopback (Python's
//! aiosmtpd, writing a maildir), the real `tandem` binary on temp folders, the real state
//! file. Waits poll with a generous deadline; nothing asserts a duration.

#[cfg(unix)]
use crate::common::{start_service, wait_for};
use crate::common::{stderr, stdout, Pair};
#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;
#[cfg(unix)]
use std::process::{Child, Command, Stdio};
#[cfg(unix)]
use std::time::Duration;
use tandem::model::Side::{Left, Right};

#[cfg(unix)]
const T: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// aiosmtpd on loopback, storing every message in a maildir.
// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
struct Smtp {
    child: Child,
    dir: PathBuf,
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
impl Smtp {
    fn start(port: u16, dir: &Path) -> Smtp {
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        wait_for("the SMTP server", T, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        Smtp { child, dir: dir.into() }
    }

    /// Every message received (raw text), oldest first.
    fn messages(&self) -> Vec<String> {
        let mut v: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(self.dir.join("new"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                (
                    e.metadata().unwrap().modified().unwrap(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v.into_iter().map(|x| x.1).collect()
    }
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The header fields of a message, unfolded (a line starting with white space continues the
/// field before it, RFC 5322 2.2.3).
// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
fn headers(msg: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in msg.split("\n\n").next().unwrap().lines() {
        match out.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => out.push(line.to_string()),
        }
    }
    out
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
fn config(p: &Pair, port: u16, email_extra: &str, pair_extra: &str) -> PathBuf {
    config_with(
        p,
        port,
        "\"tandem@example.com\"",
        "[\"admin@example.com\", \"ops@example.com\"]",
        email_extra,
        pair_extra,
    )
}

/// A config whose `[email]` has these `from` and `to` values (TOML literals).
fn config_with(p: &Pair, port: u16, from: &str, to: &str, email_extra: &str, pair_extra: &str) -> PathBuf {
    let f = p.dir.path().join("tandem.toml");
    std::fs::write(
        &f,
        format!(
            "state = {:?}\n[email]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nfrom = {from}\nto = {to}\n{email_extra}\n\n[[pair]]\nname = \"docs\"\nleft = {:?}\nright = {:?}\n{pair_extra}\n",
            p.state.to_str().unwrap(),
            p.left.to_str().unwrap(),
            p.right.to_str().unwrap()
        ),
    )
    .unwrap();
    f
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
fn sync_config(p: &Pair, cfg: &Path) -> std::process::Output {
    p.tandem(&["sync", "--config", cfg.to_str().unwrap()])
}

/// Both sides changed `rel` since the last sync: an R1 clash.
// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
fn make_clash(p: &Pair, rel: &str) {
    p.write_at(Left, rel, b"base", 1_600_000_000);
    let o = p.sync(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    p.write_at(Left, rel, b"left edit, older", 1_650_000_000);
    p.write_at(Right, rel, b"right edit, newer!", 1_650_000_600);
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn mail_per_conflict_and_summary_arrive_with_the_right_content() {
    let p = Pair::new();
    let port = free_port();
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    make_clash(&p, "reports/q3.xlsx");
    let cfg = config(&p, port, "granularity = \"per-conflict\"\nsubject_prefix = \"[Tandem test]\"", "");
    let o = sync_config(&p, &cfg);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    wait_for("the conflict mail", T, || smtp.messages().len() == 1);
    let m = &smtp.messages()[0];
    let h = headers(m);
    assert!(
        h.iter()
            .any(|l| l.starts_with("Subject: [Tandem test] conflict in docs: reports/q3.xlsx")),
        "{m}"
    );
    assert!(h.iter().any(|l| l == "X-RcptTo: admin@example.com, ops@example.com"), "{m}");
    for needle in [
        "Path: reports/q3.xlsx",
        "Rule: R1",
        "Newer side: right",
        "Left:  16 bytes, modified 2022-04-15",
        "Right: 18 bytes, modified 2022-04-15",
        "Action: the left version was kept as reports/q3_clash_",
    ] {
        assert!(m.contains(needle), "{needle:?} not in\n{m}");
    }
    // Summary granularity: one mail per run that did something, with the counts.
    let cfg = config(&p, port, "granularity = \"summary\"", "");
    p.write(Left, "new/a.txt", b"12345");
    p.write(Right, "new/b.txt", b"1234567890");
    let o = sync_config(&p, &cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for("the summary mail", T, || smtp.messages().len() == 2);
    let m = &smtp.messages()[1];
    assert!(m.contains("Subject: [Tandem] docs: 2 copied, 0 failed"), "{m}");
    for needle in [
        "Copied: 2",
        "Renamed: 0",
        "Soft-deleted (to the trash): 0",
        "By rule: R10: 1, R9: 1",
        "Failed: 0",
        "Bytes: 15",
        "Duration: ",
    ] {
        assert!(m.contains(needle), "{needle:?} not in\n{m}");
    }
    // A run with nothing to do mails nothing.
    assert!(sync_config(&p, &cfg).status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(smtp.messages().len(), 2);
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn mail_server_down_the_sync_completes_and_the_mail_arrives_when_it_is_back() {
    let p = Pair::new();
    let port = free_port();
    make_clash(&p, "plan.docx");
    let cfg = config(&p, port, "", "");
    let o = sync_config(&p, &cfg);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 mail(s) queued for later"), "{}", stderr(&o));
    p.assert_converged();
    // The server comes back; the next run (here a no-op sync) delivers the queued mail.
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    // Retries back off (1 s after the first failure).
    std::thread::sleep(Duration::from_millis(1200));
    assert!(sync_config(&p, &cfg).status.success());
    wait_for("the queued mail", T, || smtp.messages().len() == 1);
    assert!(smtp.messages()[0].contains("Path: plan.docx"));
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn mail_service_retries_a_down_server_and_delivers_once_it_is_back() {
    let p = Pair::new();
    let port = free_port();
    let cfg = config(&p, port, "granularity = \"summary\"", "");
    // The startup run copies it and asks for a summary mail; the server is down.
    std::fs::write(p.path(Left, "while the mail server is down.txt"), b"x").unwrap();
    let mut svc = start_service(&p, &["--config", cfg.to_str().unwrap()], &[]);
    wait_for("the sync", T, || p.exists(Right, "while the mail server is down.txt"));
    std::thread::sleep(Duration::from_secs(2));
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    wait_for("the mail after the server is back", T, || !smtp.messages().is_empty());
    let m = smtp.messages()[0].clone();
    assert!(m.contains("Copied: 1") && m.contains("(startup)"), "{m}");
    // Runs started by file events do not mail a summary each (the digest covers them).
    std::fs::write(p.path(Left, "edit.txt"), b"y").unwrap();
    wait_for("the watch run", T, || p.exists(Right, "edit.txt"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(svc.stop(), Some(0));
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn mail_newline_in_a_file_name_cannot_add_headers() {
    let p = Pair::new();
    let port = free_port();
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    let evil = "evil\nBcc: attacker@evil.example\nX-Injected: yes.txt";
    make_clash(&p, evil);
    let cfg = config(&p, port, "", "");
    let o = sync_config(&p, &cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for("the conflict mail", T, || smtp.messages().len() == 1);
    let m = &smtp.messages()[0];
    let h = headers(m);
    assert!(!h.iter().any(|l| l.starts_with("Bcc") || l.starts_with("X-Injected")), "{m}");
    assert!(h.iter().any(|l| l == "X-RcptTo: admin@example.com, ops@example.com"), "{m}");
    assert!(
        h.iter()
            .any(|l| l.starts_with("Subject:") && l.contains("evil Bcc: attacker@evil.example X-Injected")),
        "{m}"
    );
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn mail_guard_stop_always_mails() {
    let p = Pair::new();
    let port = free_port();
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    for i in 0..4 {
        p.write(Left, &format!("f{i}.txt"), b"x");
    }
    let cfg = config(&p, port, "granularity = \"digest\"", "");
    assert!(sync_config(&p, &cfg).status.success());
    for i in 0..4 {
        std::fs::remove_file(p.path(Left, &format!("f{i}.txt"))).unwrap();
    }
    p.write(Left, "keep.txt", b"so the side is not empty");
    let o = sync_config(&p, &cfg);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    wait_for("the guard mail", T, || smtp.messages().len() == 1);
    assert!(
        smtp.messages()[0].contains("stopped by a safety guard (mass_delete)"),
        "{}",
        smtp.messages()[0]
    );
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn mail_a_replaced_root_stops_the_pair_and_mails() {
    let p = Pair::new();
    let port = free_port();
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    for i in 0..4 {
        p.write(Left, &format!("f{i}.txt"), b"x");
    }
    let cfg = config(&p, port, "granularity = \"digest\"", "");
    assert!(sync_config(&p, &cfg).status.success());
    // Another disk mounted where the right folder was: other files, no marker.
    std::fs::rename(&p.right, p.right.with_extension("real")).unwrap();
    p.write(Right, "other disk.txt", b"not ours");
    let o = sync_config(&p, &cfg);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    wait_for("the guard mail", T, || smtp.messages().len() == 1);
    assert!(
        smtp.messages()[0].contains("stopped by a safety guard (root_changed)"),
        "{}",
        smtp.messages()[0]
    );
    assert_eq!(p.tree(Left).len(), 4, "nothing reached the left side");
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn notify_test_sends_or_says_what_failed() {
    let p = Pair::new();
    let port = free_port();
    let cfg = config(&p, port, "", "");
    let o = p.tandem(&["notify-test", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("sending through 127.0.0.1:{port} failed")),
        "{}",
        stderr(&o)
    );
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    let o = p.tandem(&["notify-test", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    wait_for("the test mail", T, || smtp.messages().len() == 1);
    assert!(smtp.messages()[0].contains("Subject: [Tandem] test mail"));
    // A password file others can read is refused, naming the key and the fix.
    let pw = p.dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let cfg = config(
        &p,
        port,
        &format!("username = \"u\"\npassword_file = {:?}", pw.to_str().unwrap()),
        "",
    );
    let o = p.tandem(&["notify-test", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("email.password_file") && stderr(&o).contains("chmod 600"),
        "{}",
        stderr(&o)
    );
}

/// The settings page's "Send a test mail" (issue 19): through the running service's API,
/// with the mail settings as saved or as the form has them; a failure says what failed.
// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn settings_test_mail_is_sent_through_the_api_or_says_what_failed() {
    use crate::service::http_body;
    let p = Pair::new();
    let port = free_port();
    let cfg = config(&p, port, "", "");
    let mut svc = start_service(&p, &["--config", cfg.to_str().unwrap()], &[]);
    let token = std::fs::read_to_string(format!("{}.api-token", p.state.display())).unwrap();
    let token = Some(token.trim());
    let (code, body) = http_body(&p, "POST", "/api/test-mail", None, token, None, r#"{"edits": []}"#);
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains("\"code\":\"mail_failed\"") && body.contains(&format!("127.0.0.1:{port}")),
        "{body}"
    );
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    let (code, body) = http_body(&p, "POST", "/api/test-mail", None, token, None, r#"{"edits": []}"#);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("admin@example.com"), "{body}");
    wait_for("the test mail", T, || smtp.messages().len() == 1);
    assert!(smtp.messages()[0].contains("Subject: [Tandem] test mail"));
    // The form's unsaved edits count: a recipient typed but not saved gets it.
    let edits = r#"{"edits": [{"key": "email.to", "value": ["new@example.com"]}]}"#;
    let (code, body) = http_body(&p, "POST", "/api/test-mail", None, token, None, edits);
    assert_eq!(code, 200, "{body}");
    wait_for("the second test mail", T, || smtp.messages().len() == 2);
    assert!(smtp.messages()[1].contains("new@example.com"), "{}", smtp.messages()[1]);
    assert!(!std::fs::read_to_string(&cfg).unwrap().contains("new@example.com"), "nothing saved");
    assert_eq!(svc.stop(), Some(0));
}

// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn schedule_missed_run_of_a_schedule_only_pair_is_caught_up_once_and_mails_summary_and_conflict() {
    // "Sync every night at 02:00, mail me a summary, mail me each conflict."
    let p = Pair::new();
    let port = free_port();
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    make_clash(&p, "budget.xlsx");
    p.write(Left, "nightly.txt", b"synced by the schedule");
    let cfg = config(
        &p,
        port,
        "granularity = [\"summary\", \"per-conflict\"]",
        "watch = \"off\"\n[[pair.schedule]]\nname = \"nightly\"\ndaily = \"02:00\"\ntz = \"UTC\"",
    );
    let list = || {
        let o = p.tandem(&["schedules", "list", "--config", cfg.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(stdout(&o).lines().next().unwrap()).unwrap()
    };
    let s = list();
    assert_eq!(s["name"], "nightly");
    assert!(s["next_run"].as_i64().unwrap() > tandem::state::now_ns());
    // The service was down at 02:00 three nights running: the state says the run was due
    // three days ago.
    {
        let store = tandem::state::Store::open(&p.state).unwrap();
        let id = store.pair_id("docs", &p.left, &p.right).unwrap();
        let spec = tandem::model::schedule::ScheduleSpec {
            name: "nightly".into(),
            when: "daily 02:00".into(),
            tz: Some("UTC".into()),
            job: tandem::model::schedule::Job::Sync,
        };
        let three_days_ago = tandem::state::now_ns() - 3 * 86_400 * 1_000_000_000;
        store
            .schedule_put(id, "nightly", &spec.key(), Some(three_days_ago), None, None, false)
            .unwrap();
    }
    let mut svc = start_service(&p, &["--config", cfg.to_str().unwrap()], &[]);
    wait_for("the caught-up run", T, || p.exists(Right, "nightly.txt"));
    wait_for("its outcome", T, || {
        list()["last_outcome"].as_str().is_some_and(|o| o.starts_with("ok"))
    });
    wait_for("two mails", T, || smtp.messages().len() == 2);
    let mails = smtp.messages().join("\n----\n");
    assert!(
        mails.contains("conflict in docs: budget.xlsx") && mails.contains("Rule: R1"),
        "{mails}"
    );
    assert!(
        mails.contains("docs: 3 copied, 0 failed") && mails.contains("(schedule)"),
        "{mails}"
    );
    // A schedule-only pair does not react to edits.
    p.write(Left, "later.txt", b"waits for the next night");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!p.exists(Right, "later.txt"));
    assert_eq!(svc.stop(), Some(0));
    let s = list();
    assert_eq!(s["last_outcome"], "ok: 3 copied", "{s}");
    assert!(
        s["next_run"].as_i64().unwrap() > tandem::state::now_ns(),
        "next run planned from now: {s}"
    );
    let o = p.tandem(&["--state", p.state.to_str().unwrap(), "history", "--json"]);
    let triggers: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["trigger"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        triggers,
        ["schedule", "manual"],
        "(newest first) the base sync, then caught up once, no startup run"
    );
    // Paused schedules do not run, even when due.
    let o = p.tandem(&["schedules", "pause", "nightly", "--pair", "docs", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(list()["paused"], true);
}

#[test]
fn history_csv_and_json_parse_back_to_the_same_runs() {
    // A name CSV must quote. Windows names cannot hold `"`: there only the comma.
    #[cfg(unix)]
    let name = "a, \"quoted\".txt";
    #[cfg(windows)]
    let name = "a, quoted.txt";
    let p = Pair::new();
    p.write(Left, name, b"1");
    p.write(Left, "stays.txt", b"so no side is ever empty");
    p.sync_ok();
    p.write(Right, "b.txt", b"22");
    std::fs::remove_file(p.path(Left, name)).unwrap();
    p.sync_ok();
    let st = p.state.to_str().unwrap();
    let json = stdout(&p.tandem(&["--state", st, "history", "--json"]));
    let csv = stdout(&p.tandem(&["--state", st, "history", "--csv"]));
    let runs: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut rows = csv.lines();
    let head: Vec<&str> = rows.next().unwrap().split(',').collect();
    let rows: Vec<Vec<String>> = rows.map(parse_csv_line).collect();
    assert_eq!(runs.len(), 2);
    assert_eq!(rows.len(), 2);
    for (r, row) in runs.iter().zip(&rows) {
        let col = |name: &str| row[head.iter().position(|h| *h == name).unwrap()].clone();
        assert_eq!(col("run"), r["id"].to_string());
        assert_eq!(col("trigger"), r["trigger"].as_str().unwrap());
        assert_eq!(col("status"), r["status"].as_str().unwrap());
        for k in ["copied", "renamed", "deleted", "trashed", "conflicts", "failed", "bytes"] {
            assert_eq!(col(k), r["counts"][k].to_string(), "{k}");
        }
    }
    // Every action of a run, with path, side and outcome.
    let id = runs[0]["id"].to_string();
    let actions: Vec<serde_json::Value> = stdout(&p.tandem(&["--state", st, "history", "--run", &id, "--json"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let paths: Vec<&str> = actions.iter().map(|a| a["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"b.txt") && paths.contains(&name), "{actions:?}");
    assert!(
        actions.iter().all(|a| a["status"] == "done" && a["side"].is_string()),
        "{actions:?}"
    );
    let csv = stdout(&p.tandem(&["--state", st, "history", "--run", &id, "--csv"]));
    let parsed: Vec<Vec<String>> = csv.lines().skip(1).map(parse_csv_line).collect();
    assert_eq!(parsed.len(), actions.len());
    assert!(parsed.iter().any(|r| r[4] == name), "{csv}");
}

/// RFC 4180 fields: quoted fields may hold commas and doubled quotes.
fn parse_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// A config whose `[email]` has these `from` and `to` values (TOML literals).
fn address_config(p: &Pair, port: u16, from: &str, to: &str) -> PathBuf {
    config_with(p, port, from, to, "", "")
}

/// Addresses were checked by hand (a dot in the domain required), so `admin@localhost`, a
/// real address on a local mail server, was refused. Now lettre parses them, as it does
/// when sending: the config is accepted and the mail reaches that recipient.
// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn regression_email_address_admin_at_localhost_is_accepted_and_mailed() {
    let p = Pair::new();
    let port = free_port();
    let cfg = address_config(&p, port, r#""tandem@localhost""#, r#"["admin@localhost"]"#);
    let o = p.tandem(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    let o = p.tandem(&["notify-test", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    wait_for("the test mail", T, || smtp.messages().len() == 1);
    let m = &smtp.messages()[0];
    let h = headers(m);
    assert!(h.iter().any(|l| l == "X-RcptTo: admin@localhost"), "{m}");
    assert!(h.iter().any(|l| l == "X-MailFrom: tandem@localhost"), "{m}");
}

/// What lettre cannot parse is refused when the config is read, naming the key (with its
/// index in `to`) and the value, before any mail is attempted.
#[test]
fn regression_email_address_that_is_not_one_is_refused_naming_the_key() {
    let p = Pair::new();
    let port = free_port();
    for (from, to, key, bad) in [
        (
            r#""tandem@example.com""#,
            r#"["admin@example.com", "not an address"]"#,
            "email.to[1]",
            "not an address",
        ),
        (r#""not an address""#, r#"["admin@example.com"]"#, "email.from", "not an address"),
        (r#""tandem@example.com""#, r#"["a@b.c, d@e.f"]"#, "email.to[0]", "a@b.c, d@e.f"),
        (r#""tandem@example.com""#, r#"["Name <a@b.c"]"#, "email.to[0]", "Name <a@b.c"),
        (r#""tandem@example.com""#, r#"["a@b.c\nBcc: x@y.z"]"#, "email.to[0]", "Bcc: x@y.z"),
    ] {
        let cfg = address_config(&p, port, from, to);
        for args in [
            vec!["check-config", cfg.to_str().unwrap()],
            vec!["notify-test", "--config", cfg.to_str().unwrap()],
        ] {
            let o = p.tandem(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?} with to = {to}: {}{err}", stdout(&o));
            assert!(
                err.contains(&format!("key `{key}`")) && err.contains(bad) && err.contains("e-mail address"),
                "{args:?} with from = {from}, to = {to}: {err}"
            );
        }
    }
}

/// A mailbox with a display name is what lettre sends with (`Message::builder().from/to`
/// take a mailbox), so the config keeps accepting it, and the mail carries the name.
// Unix only: the SMTP server is Python's aiosmtpd, which a Windows test binary under wine cannot start.
#[cfg(unix)]
#[test]
fn regression_email_address_with_a_display_name_is_accepted_and_mailed() {
    let p = Pair::new();
    let port = free_port();
    let cfg = address_config(
        &p,
        port,
        r#""Tandem Sync <tandem@example.com>""#,
        r#"["Ops Team <ops@example.com>", "admin@example.com"]"#,
    );
    let o = p.tandem(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let smtp = Smtp::start(port, &p.dir.path().join("maildir"));
    let o = p.tandem(&["notify-test", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    wait_for("the test mail", T, || smtp.messages().len() == 1);
    let m = &smtp.messages()[0];
    let h = headers(m);
    assert!(h.iter().any(|l| l == "X-RcptTo: ops@example.com, admin@example.com"), "{m}");
    assert!(
        h.iter()
            .any(|l| l.starts_with("From: ") && l.contains("Tandem Sync") && l.contains("<tandem@example.com>")),
        "{m}"
    );
    assert!(
        h.iter()
            .any(|l| l.starts_with("To: ") && l.contains("Ops Team") && l.contains("<ops@example.com>")),
        "{m}"
    );
}
