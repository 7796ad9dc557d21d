//! Table-driven planner cases: one `check` helper, one case per rule and option (SPEC §3).
//! Trees are written as `("path", "f:content@mtime_seconds")` or `("path", "d")`; the base
//! holds the same spec for both sides. Expected actions are rendered as
//! `verb side path rule` in plan order. Mtime 1795357800 is 2026-11-22 14:30:00 UTC, so
//! clash stamps read 202611221430.

use std::collections::BTreeMap;
use tandem::config::{ClashOption, PropsOption, Rules};
use tandem::engine::plan::{plan, Action, Keep, NameRules, PlanInput, PlanOptions};
use tandem::model::{Base, BaseEntry, Entry, Kind, RelPath, Side, SideMeta, Snapshot};

fn entry(spec: &str) -> Entry {
    if spec == "d" {
        return Entry {
            kind: Kind::Dir,
            size: 0,
            mtime: 0,
            mode: 0,
            file_id: 0,
            version: 0,
            hash: None,
        };
    }
    let body = spec.strip_prefix("f:").expect("spec is d or f:content@mtime");
    let (content, t) = body.rsplit_once('@').expect("f:content@mtime");
    // `@mtime#version`: a version token (an ETag) too.
    let (t, version) = t.split_once('#').map_or((t, 0), |(t, v)| (t, v.parse().unwrap()));
    let t: i64 = t.parse().unwrap();
    Entry {
        kind: Kind::File,
        size: content.len() as u64,
        mtime: t * 1_000_000_000,
        mode: 0,
        file_id: 0,
        version,
        hash: Some(*blake3::hash(content.as_bytes()).as_bytes()),
    }
}

fn tree(items: &[(&str, &str)]) -> Snapshot {
    items.iter().map(|(p, s)| (RelPath::new(p).unwrap(), entry(s))).collect()
}

fn base(items: &[(&str, &str)]) -> Base {
    items
        .iter()
        .map(|(p, s)| {
            let e = entry(s);
            (
                RelPath::new(p).unwrap(),
                BaseEntry {
                    kind: e.kind,
                    size: e.size,
                    hash: e.hash,
                    left: SideMeta::of(&e),
                    right: SideMeta::of(&e),
                },
            )
        })
        .collect()
}

fn show(a: &Action) -> String {
    match a {
        Action::Rename { side, from, to, rule, .. } => format!("rename {side} {from}->{to} {}", rule.name()),
        Action::ClashRename { side, from, to, rule, .. } => format!("clash {side} {from}->{to} {}", rule.name()),
        Action::MkDir { side, path, rule } => format!("mkdir {side} {path} {}", rule.name()),
        Action::Copy { side, path, rule, .. } => format!("copy {side} {path} {}", rule.name()),
        Action::SetProps { side, path, rule, .. } => format!("props {side} {path} {}", rule.name()),
        Action::Delete {
            side, path, soft, rule, ..
        } => format!("{} {side} {path} {}", if *soft { "trash" } else { "delete" }, rule.name()),
        Action::Conflict { path, rule, .. } => format!("conflict {path} {}", rule.name()),
        Action::Record { path, base: Some(_), rule } => format!("record {path} {}", rule.name()),
        Action::Record { path, base: None, rule } => format!("forget {path} {}", rule.name()),
        Action::Skip { side, path, .. } => format!("skip {side} {path}"),
    }
}

#[derive(Clone)]
struct Opts {
    rules: Rules,
    soft_max: u64,
    left_names: NameRules,
    right_names: NameRules,
    overrides: BTreeMap<RelPath, Keep>,
    mtime_window_ns: i64,
    content_by_meta: bool,
    server_mtimes: [bool; 2],
}

struct Case {
    name: &'static str,
    base: &'static [(&'static str, &'static str)],
    left: &'static [(&'static str, &'static str)],
    right: &'static [(&'static str, &'static str)],
    opts: fn(&mut Opts),
    expect: &'static [&'static str],
}

fn defaults(_: &mut Opts) {}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            rules: Rules::default(),
            soft_max: 20 << 20,
            left_names: NameRules::default(),
            right_names: NameRules::default(),
            overrides: BTreeMap::new(),
            mtime_window_ns: 1,
            content_by_meta: false,
            server_mtimes: [false, false],
        }
    }
}

/// Plan `input` with `o` (clash names in UTC).
fn plan_with(input: &PlanInput, o: &Opts) -> tandem::engine::plan::Plan {
    let opts = PlanOptions {
        rules: o.rules,
        soft_delete_max_bytes: o.soft_max,
        left_names: o.left_names,
        right_names: o.right_names,
        max_path_len: 240,
        overrides: &o.overrides,
        utc_offset: &|_| 0,
        comparable_versions: true,
        mtime_window_ns: o.mtime_window_ns,
        content_by_meta: o.content_by_meta,
        server_mtimes: o.server_mtimes,
    };
    plan(input, &opts)
}

fn check(c: &Case) -> Result<(), String> {
    let mut o = Opts::default();
    (c.opts)(&mut o);
    let input = PlanInput {
        left: tree(c.left),
        right: tree(c.right),
        base: base(c.base),
        unknown: vec![],
    };
    let p = plan_with(&input, &o);
    if !p.hash_requests.is_empty() {
        return Err(format!("{}: unexpected hash requests {:?}", c.name, p.hash_requests));
    }
    let got: Vec<String> = p.actions.iter().map(show).collect();
    if got != c.expect {
        return Err(format!("{}:\n  expected {:#?}\n  got      {:#?}", c.name, c.expect, got));
    }
    Ok(())
}

const CASES: &[Case] = &[
    // ---- R1: changed on both sides, contents differ
    Case {
        name: "R1 option 1 clash: newer keeps the name, older kept on both sides",
        base: &[("a.txt", "f:base@1000")],
        left: &[("a.txt", "f:left@1795357800")],
        right: &[("a.txt", "f:right!@1795358400")],
        opts: defaults,
        expect: &[
            "clash left a.txt->a_clash_202611221430.txt R1",
            "copy right a_clash_202611221430.txt R1",
            "copy left a.txt R1",
        ],
    },
    Case {
        name: "R1 clash name taken on one side: -2 appended",
        base: &[("a.txt", "f:base@1000")],
        left: &[("a.txt", "f:left@1795357800"), ("a_clash_202611221430.txt", "f:old@5")],
        right: &[("a.txt", "f:right!@1795358400"), ("a_clash_202611221430.txt", "f:old@5")],
        opts: defaults,
        expect: &[
            "clash left a.txt->a_clash_202611221430-2.txt R1",
            "copy right a_clash_202611221430-2.txt R1",
            "copy left a.txt R1",
            "record a_clash_202611221430.txt R2",
        ],
    },
    Case {
        name: "R1 option 2 newer wins: the older side is overwritten (old version to trash)",
        base: &[("a.txt", "f:base@1000")],
        left: &[("a.txt", "f:left@2000")],
        right: &[("a.txt", "f:right!@3000")],
        opts: |o| o.rules.r1 = ClashOption::NewerWins,
        expect: &["copy left a.txt R1"],
    },
    Case {
        name: "R1 option 3 manual: nothing touched, conflict raised",
        base: &[("a.txt", "f:base@1000")],
        left: &[("a.txt", "f:left@2000")],
        right: &[("a.txt", "f:right!@3000")],
        opts: |o| o.rules.r1 = ClashOption::Manual,
        expect: &["conflict a.txt R1"],
    },
    Case {
        name: "R1 on a clash copy: never clash a clash file, newer wins",
        base: &[("a_clash_202601010000.txt", "f:base@1000")],
        left: &[("a_clash_202601010000.txt", "f:left@2000")],
        right: &[("a_clash_202601010000.txt", "f:right!@3000")],
        opts: defaults,
        expect: &["copy left a_clash_202601010000.txt R1"],
    },
    Case {
        name: "R1 equal mtimes: left keeps the name",
        base: &[("a", "f:base@1000")],
        left: &[("a", "f:left@1795357800")],
        right: &[("a", "f:right!@1795357800")],
        opts: defaults,
        expect: &[
            "clash right a->a_clash_202611221430 R1",
            "copy right a R1",
            "copy left a_clash_202611221430 R1",
        ],
    },
    // ---- R1': changed on both sides, same content
    Case {
        name: "R1' both changed to the same content: record only",
        base: &[("a.txt", "f:base@1000")],
        left: &[("a.txt", "f:same@2000")],
        right: &[("a.txt", "f:same@3000")],
        opts: defaults,
        expect: &["record a.txt R1'"],
    },
    Case {
        name: "regression: an S3 object the server stamped anew (same ETag) was taken for a property change",
        base: &[("s.txt", "f:same@1000#77")],
        left: &[("s.txt", "f:same@1000")],
        right: &[("s.txt", "f:same@1004#77")],
        opts: |o| o.server_mtimes = [false, true],
        expect: &["record s.txt refresh"],
    },
    Case {
        name: "a server-stamped side: another ETag with the same size is a content change",
        base: &[("s.txt", "f:same@1000#77")],
        left: &[("s.txt", "f:same@1000")],
        right: &[("s.txt", "f:diff@1000#78")],
        opts: |o| o.server_mtimes = [false, true],
        expect: &["copy left s.txt R4"],
    },
    // ---- R2: new on both sides
    Case {
        name: "R2 where reading is a download (cloud drive): same size and time is same content, nothing read",
        base: &[],
        left: &[("n.doc", "f:aaaa@2000")],
        right: &[("n.doc", "f:bbbb@2000")],
        opts: |o| o.content_by_meta = true,
        expect: &["record n.doc R2"],
    },
    Case {
        name: "regression: a local file and an S3 upload of the same size in the same second were taken for the same content",
        base: &[],
        left: &[("n.doc", "f:aaaa@2000")],
        right: &[("n.doc", "f:bbbb@2000#5")],
        opts: |o| {
            o.content_by_meta = true;
            o.server_mtimes = [false, true];
        },
        expect: &[
            "clash right n.doc->n_clash_197001010033.doc R2",
            "copy right n.doc R2",
            "copy left n_clash_197001010033.doc R2",
        ],
    },
    Case {
        name: "R2 where reading is a download: another time still compares content",
        base: &[],
        left: &[("n.doc", "f:aaaa@1795357800")],
        right: &[("n.doc", "f:bbbb@1795358400")],
        opts: |o| o.content_by_meta = true,
        expect: &[
            "clash left n.doc->n_clash_202611221430.doc R2",
            "copy left n.doc R2",
            "copy right n_clash_202611221430.doc R2",
        ],
    },
    Case {
        name: "R2 option 1 clash",
        base: &[],
        left: &[("n.doc", "f:left@1795358400")],
        right: &[("n.doc", "f:right!@1795357800")],
        opts: defaults,
        expect: &[
            "clash right n.doc->n_clash_202611221430.doc R2",
            "copy right n.doc R2",
            "copy left n_clash_202611221430.doc R2",
        ],
    },
    Case {
        name: "R2 option 2 newer wins",
        base: &[],
        left: &[("n.doc", "f:left@1000")],
        right: &[("n.doc", "f:right!@2000")],
        opts: |o| o.rules.r2 = ClashOption::NewerWins,
        expect: &["copy left n.doc R2"],
    },
    Case {
        name: "R2 manual",
        base: &[],
        left: &[("n.doc", "f:left@1000")],
        right: &[("n.doc", "f:right!@2000")],
        opts: |o| o.rules.r2 = ClashOption::Manual,
        expect: &["conflict n.doc R2"],
    },
    Case {
        name: "R2 same content (lost state file): recorded, nothing copied",
        base: &[],
        left: &[("n.doc", "f:same@1000")],
        right: &[("n.doc", "f:same@1000")],
        opts: defaults,
        expect: &["record n.doc R2"],
    },
    // ---- R3, R4: changed on one side
    Case {
        name: "R3 changed on left only",
        base: &[("a", "f:base@1000")],
        left: &[("a", "f:new content@2000")],
        right: &[("a", "f:base@1000")],
        opts: defaults,
        expect: &["copy right a R3"],
    },
    Case {
        name: "R4 changed on right only",
        base: &[("a", "f:base@1000")],
        left: &[("a", "f:base@1000")],
        right: &[("a", "f:new content@2000")],
        opts: defaults,
        expect: &["copy left a R4"],
    },
    Case {
        name: "R3 content change wins over a properties-only change on the other side",
        base: &[("a", "f:base@1000")],
        left: &[("a", "f:new content@2000")],
        right: &[("a", "f:base@1500")],
        opts: defaults,
        expect: &["copy right a R3"],
    },
    // ---- R5, R6: deleted on one side, changed on the other
    Case {
        name: "R5 deleted left, changed right: the change survives",
        base: &[("a", "f:base@1000")],
        left: &[],
        right: &[("a", "f:changed@2000")],
        opts: defaults,
        expect: &["copy left a R5"],
    },
    Case {
        name: "R6 deleted right, changed left",
        base: &[("a", "f:base@1000")],
        left: &[("a", "f:changed@2000")],
        right: &[],
        opts: defaults,
        expect: &["copy right a R6"],
    },
    // ---- R7, R8: deleted on one side, unchanged on the other
    Case {
        name: "R7 deleted left, unchanged right: soft delete on right",
        base: &[("a", "f:base@1000")],
        left: &[],
        right: &[("a", "f:base@1000")],
        opts: defaults,
        expect: &["trash right a R7"],
    },
    Case {
        name: "R8 deleted right, unchanged left",
        base: &[("a", "f:base@1000")],
        left: &[("a", "f:base@1000")],
        right: &[],
        opts: defaults,
        expect: &["trash left a R8"],
    },
    Case {
        name: "R7 above soft_delete_max_bytes: deleted outright",
        base: &[("big", "f:0123456789@1000")],
        left: &[],
        right: &[("big", "f:0123456789@1000")],
        opts: |o| o.soft_max = 5,
        expect: &["delete right big R7"],
    },
    // ---- R9, R10: new on one side
    Case {
        name: "R9 new on left",
        base: &[],
        left: &[("d", "d"), ("d/n", "f:x@1000")],
        right: &[],
        opts: defaults,
        expect: &["mkdir right d R9", "copy right d/n R9"],
    },
    Case {
        name: "R10 new on right",
        base: &[],
        left: &[],
        right: &[("n", "f:x@1000")],
        opts: defaults,
        expect: &["copy left n R10"],
    },
    // ---- R11, R12: properties or case changed on one side
    Case {
        name: "R11 mtime-only change on left: applied on right, no copy",
        base: &[("a", "f:same@1000")],
        left: &[("a", "f:same@2000")],
        right: &[("a", "f:same@1000")],
        opts: defaults,
        expect: &["props right a R11"],
    },
    Case {
        name: "R12 mtime-only change on right",
        base: &[("a", "f:same@1000")],
        left: &[("a", "f:same@1000")],
        right: &[("a", "f:same@2000")],
        opts: defaults,
        expect: &["props left a R12"],
    },
    Case {
        name: "R11 case-only rename on left: renamed on right",
        base: &[("report.txt", "f:same@1000")],
        left: &[("Report.txt", "f:same@1000")],
        right: &[("report.txt", "f:same@1000")],
        opts: defaults,
        expect: &["rename right report.txt->Report.txt R11"],
    },
    Case {
        name: "R12 case-only rename on right with a case-insensitive left",
        base: &[("report.txt", "f:same@1000")],
        left: &[("report.txt", "f:same@1000")],
        right: &[("REPORT.txt", "f:same@1000")],
        opts: |o| o.left_names.case_insensitive = true,
        expect: &["rename left report.txt->REPORT.txt R12"],
    },
    // ---- R13: properties changed on both sides
    Case {
        name: "R13 times within the coarser side's mtime step (FAT: 2 s) are the same time: record",
        base: &[("a", "f:x@1000")],
        left: &[("a", "f:x@2000")],
        right: &[("a", "f:x@2001")],
        opts: |o| o.mtime_window_ns = 2_000_000_000,
        expect: &["record a R13"],
    },
    Case {
        name: "R13 option 1 the newer change wins",
        base: &[("a", "f:same@1000")],
        left: &[("a", "f:same@2000")],
        right: &[("a", "f:same@3000")],
        opts: defaults,
        expect: &["props left a R13"],
    },
    Case {
        name: "R13 option 2 left wins",
        base: &[("a", "f:same@1000")],
        left: &[("a", "f:same@2000")],
        right: &[("a", "f:same@3000")],
        opts: |o| o.rules.r13 = PropsOption::LeftWins,
        expect: &["props right a R13"],
    },
    Case {
        name: "R13 option 3 manual",
        base: &[("a", "f:same@1000")],
        left: &[("a", "f:same@2000")],
        right: &[("a", "f:same@3000")],
        opts: |o| o.rules.r13 = PropsOption::Manual,
        expect: &["conflict a R13"],
    },
    Case {
        name: "R13 both made the same change: record",
        base: &[("a", "f:same@1000")],
        left: &[("a", "f:same@2000")],
        right: &[("a", "f:same@2000")],
        opts: defaults,
        expect: &["record a R13"],
    },
    // ---- R14: renames and moves
    Case {
        name: "R14 file renamed on left: renamed on right, not copied",
        base: &[("a.txt", "f:data@1000")],
        left: &[("b.txt", "f:data@1000")],
        right: &[("a.txt", "f:data@1000")],
        opts: defaults,
        expect: &["rename right a.txt->b.txt R14"],
    },
    Case {
        name: "R14 file moved into a new folder on right",
        base: &[("a.txt", "f:data@1000")],
        left: &[("a.txt", "f:data@1000")],
        right: &[("sub", "d"), ("sub/a.txt", "f:data@1000")],
        opts: defaults,
        expect: &["rename left a.txt->sub/a.txt R14", "mkdir left sub R10"],
    },
    Case {
        name: "R14 folder moved on left: one folder rename on right",
        base: &[
            ("d", "d"),
            ("d/1", "f:one@1000"),
            ("d/2", "f:two@1000"),
            ("d/s", "d"),
            ("d/s/3", "f:three@1000"),
        ],
        left: &[
            ("e", "d"),
            ("e/1", "f:one@1000"),
            ("e/2", "f:two@1000"),
            ("e/s", "d"),
            ("e/s/3", "f:three@1000"),
        ],
        right: &[
            ("d", "d"),
            ("d/1", "f:one@1000"),
            ("d/2", "f:two@1000"),
            ("d/s", "d"),
            ("d/s/3", "f:three@1000"),
        ],
        opts: defaults,
        expect: &["rename right d->e R14"],
    },
    Case {
        name: "R14 folder moved on left while right edited a file inside: rename, then the edit flows back",
        base: &[("d", "d"), ("d/1", "f:one@1000"), ("d/2", "f:two@1000")],
        left: &[("e", "d"), ("e/1", "f:one@1000"), ("e/2", "f:two@1000")],
        right: &[("d", "d"), ("d/1", "f:one edited@2000"), ("d/2", "f:two@1000")],
        opts: defaults,
        expect: &["rename right d->e R14", "copy left e/1 R4"],
    },
    Case {
        name: "R14 renamed on left but the name is taken on right: delete + copy fallback keeps both",
        base: &[("a", "f:data@1000")],
        left: &[("b", "f:data@1000")],
        right: &[("a", "f:data@1000"), ("b", "f:other@1500")],
        opts: defaults,
        expect: &[
            "clash left b->b_clash_197001010016 R2",
            "copy right b_clash_197001010016 R2",
            "copy left b R2",
            "trash right a R7",
        ],
    },
    // ---- R15
    Case {
        name: "R15 deleted on both: forget",
        base: &[("a", "f:x@1000")],
        left: &[],
        right: &[],
        opts: defaults,
        expect: &["forget a R15"],
    },
    // ---- R16
    Case {
        name: "R16 file on left, folder on right: the folder keeps the name, the file becomes a clash copy",
        base: &[],
        left: &[("x", "f:file@1795357800")],
        right: &[("x", "d"), ("x/f", "f:inner@1000")],
        opts: defaults,
        expect: &[
            "clash left x->x_clash_202611221430 R16",
            "mkdir left x R16",
            "copy right x_clash_202611221430 R16",
            "copy left x/f R10",
        ],
    },
    Case {
        name: "R16 folder replaced by a file on left: the folder's files are copied back, never deleted",
        base: &[("x", "d"), ("x/f", "f:inner@1000")],
        left: &[("x", "f:file@1795357800")],
        right: &[("x", "d"), ("x/f", "f:inner@1000")],
        opts: defaults,
        expect: &[
            "clash left x->x_clash_202611221430 R16",
            "mkdir left x R16",
            "copy right x_clash_202611221430 R16",
            "copy left x/f R10",
        ],
    },
    // ---- R17
    Case {
        name: "R17 folder deleted on left while right changed and added files: folder kept",
        base: &[("d", "d"), ("d/a", "f:a@1000"), ("d/b", "f:b@1000")],
        left: &[],
        right: &[("d", "d"), ("d/a", "f:a@1000"), ("d/b", "f:b changed@2000"), ("d/c", "f:new@2000")],
        opts: defaults,
        expect: &["mkdir left d R17", "copy left d/c R10", "copy left d/b R5", "trash right d/a R7"],
    },
    Case {
        name: "folder deleted on left with nothing changed on right: files trashed, then the folder removed",
        base: &[("d", "d"), ("d/e", "d"), ("d/e/a", "f:a@1000")],
        left: &[],
        right: &[("d", "d"), ("d/e", "d"), ("d/e/a", "f:a@1000")],
        opts: defaults,
        expect: &["trash right d/e/a R7", "trash right d/e R7", "trash right d R7"],
    },
    // ---- names the other side cannot hold
    Case {
        name: "Windows-reserved names are skipped toward a Windows side",
        base: &[],
        left: &[
            ("a:b.txt", "f:x@1000"),
            ("CON.txt", "f:x@1000"),
            ("dot.", "f:x@1000"),
            ("ok.txt", "f:x@1000"),
        ],
        right: &[],
        opts: |o| o.right_names.windows = true,
        expect: &["copy right ok.txt R9", "skip left CON.txt", "skip left a:b.txt", "skip left dot."],
    },
    Case {
        name: "case twins are skipped toward a case-insensitive side",
        base: &[],
        left: &[("A.txt", "f:x@1000"), ("a.txt", "f:y@1000"), ("b.txt", "f:z@1000")],
        right: &[],
        opts: |o| o.right_names.case_insensitive = true,
        expect: &["copy right b.txt R9", "skip left A.txt", "skip left a.txt"],
    },
    Case {
        name: "case twin of an already synced name: only the new twin is skipped",
        base: &[("a.txt", "f:x@1000")],
        left: &[("A.txt", "f:y@1000"), ("a.txt", "f:x@1000")],
        right: &[("a.txt", "f:x@1000")],
        opts: |o| o.right_names.case_insensitive = true,
        expect: &["skip left A.txt"],
    },
    // ---- user decisions
    Case {
        name: "resolve keep left overwrites right",
        base: &[("a", "f:base@1000")],
        left: &[("a", "f:left@2000")],
        right: &[("a", "f:right!@3000")],
        opts: |o| {
            o.rules.r1 = ClashOption::Manual;
            o.overrides.insert(RelPath::new("a").unwrap(), Keep::Left);
        },
        expect: &["copy right a resolve"],
    },
    Case {
        name: "resolve keep right overwrites left",
        base: &[("a", "f:base@1000")],
        left: &[("a", "f:left@2000")],
        right: &[("a", "f:right!@3000")],
        opts: |o| {
            o.rules.r1 = ClashOption::Manual;
            o.overrides.insert(RelPath::new("a").unwrap(), Keep::Right);
        },
        expect: &["copy left a resolve"],
    },
    Case {
        name: "resolve keep both makes a clash copy",
        base: &[("a", "f:base@1000")],
        left: &[("a", "f:left@1795357800")],
        right: &[("a", "f:right!@1795358400")],
        opts: |o| {
            o.rules.r1 = ClashOption::Manual;
            o.overrides.insert(RelPath::new("a").unwrap(), Keep::Both);
        },
        expect: &[
            "clash left a->a_clash_202611221430 resolve",
            "copy right a_clash_202611221430 resolve",
            "copy left a resolve",
        ],
    },
    // ---- order
    Case {
        name: "order: renames, folders, copies smallest first, deletes last",
        base: &[("old", "f:gone@1000"), ("r1", "f:renamed@1000")],
        left: &[
            ("big", "f:0123456789@1000"),
            ("small", "f:0@1000"),
            ("mid", "f:01234@1000"),
            ("nd", "d"),
            ("r2", "f:renamed@1000"),
        ],
        right: &[("old", "f:gone@1000"), ("r1", "f:renamed@1000")],
        opts: defaults,
        expect: &[
            "rename right r1->r2 R14",
            "mkdir right nd R9",
            "copy right small R9",
            "copy right mid R9",
            "copy right big R9",
            "trash right old R7",
        ],
    },
];

#[test]
fn planner_table() {
    // A case whose names this platform cannot hold (a ':' on Windows, where it is not a
    // path at all) is about a Unix side: it runs where such names exist.
    let holds = |c: &&Case| c.base.iter().chain(c.left).chain(c.right).all(|(p, _)| RelPath::new(p).is_ok());
    let failures: Vec<String> = CASES.iter().filter(holds).filter_map(|c| check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn planner_asks_for_a_hash_when_size_and_time_cannot_decide() {
    // Same size, other mtime: content change or properties change? Only the hash can say.
    let mut left = tree(&[("a", "f:xxxx@2000")]);
    left.values_mut().for_each(|e| e.hash = None);
    let input = PlanInput {
        left,
        right: tree(&[("a", "f:base@1000")]),
        base: base(&[("a", "f:base@1000")]),
        unknown: vec![],
    };
    let p = plan_with(&input, &Opts::default());
    assert_eq!(p.hash_requests, vec![(Side::Left, RelPath::new("a").unwrap())]);
}

#[test]
fn planner_leaves_unreadable_paths_alone() {
    // An unreadable folder on the left must not read as "deleted".
    let input = PlanInput {
        left: tree(&[("d", "d")]),
        right: tree(&[("d", "d"), ("d/a", "f:a@1000")]),
        base: base(&[("d", "d"), ("d/a", "f:a@1000")]),
        unknown: vec![(Side::Left, RelPath::new("d").unwrap(), "cannot read folder".into())],
    };
    let p = plan_with(&input, &Opts::default());
    let got: Vec<String> = p.actions.iter().map(show).collect();
    assert_eq!(got, ["skip left d"]);
}
