//! Changing the config file's text in place with `toml_edit`, keeping its comments and
//! layout: edits by dotted key (`edit_text`), removing a schedule (`remove_schedule`), and
//! replacing the file safely (`write_atomic`). Every result is validated by `Config::parse`
//! before it is returned or written. Must not touch: any file but the config file (and its
//! temporary sibling), the meaning of keys (that is `parse`).

use super::{Config, ConfigError};
use std::path::Path;

/// Remove a schedule from the config file, keeping everything else (comments included).
/// A pair's own `[[pair.schedule]]` is looked at first, then the global `[[schedule]]`
/// list (which every pair without its own inherits). The result is validated before it
/// replaces the file (written to a temporary file, flushed, renamed). Returns where it was.
pub fn remove_schedule(file: &Path, pair: &str, name: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let cfg = Config::parse(file, &text)?;
    if cfg.pair(pair).is_none() {
        return Err(ConfigError::Invalid {
            file: file.into(),
            key: "pair".into(),
            expected: format!("a pair named {pair:?}"),
            found: "no such pair".into(),
        });
    }
    let mut doc = document(file, &text)?;
    let Some(where_) = remove_named_schedule(&mut doc, pair, name).filter(|w| !w.is_empty()) else {
        return Err(ConfigError::Invalid {
            file: file.into(),
            key: format!("schedule {name:?}"),
            expected: format!("a schedule of pair {pair}"),
            found: "no such schedule".into(),
        });
    };
    let new_text = doc.to_string();
    write_atomic(file, &new_text)?;
    Ok(where_)
}

/// Remove the schedule `name` from `pair`'s own list or, if the pair has none, from the
/// global one. Returns where it was; `Some("")` when the pair has a list of its own without
/// it (the global list does not apply to that pair), `None` when it was nowhere.
fn remove_named_schedule(doc: &mut toml_edit::DocumentMut, pair: &str, name: &str) -> Option<String> {
    let mut where_ = None;
    if let Some(pairs) = doc.get_mut("pair").and_then(|v| v.as_array_of_tables_mut()) {
        for t in pairs.iter_mut() {
            if t.get("name").and_then(|v| v.as_str()) == Some(pair) {
                if let Some(arr) = t.get_mut("schedule").and_then(|v| v.as_array_of_tables_mut()) {
                    if remove_schedule_entry(arr, name) {
                        where_ = Some(format!("removed from pair {pair}'s schedules"));
                    } else {
                        // The pair has its own list: the global one does not apply to it.
                        where_ = Some(String::new());
                    }
                }
            }
        }
    }
    if where_.is_none() {
        if let Some(arr) = doc.get_mut("schedule").and_then(|v| v.as_array_of_tables_mut()) {
            if remove_schedule_entry(arr, name) {
                where_ = Some("removed from the global [[schedule]] list (every pair without schedules of its own had it)".into());
            }
        }
    }
    where_
}

/// Remove the first schedule named `name` from `arr`; whether there was one.
fn remove_schedule_entry(arr: &mut toml_edit::ArrayOfTables, name: &str) -> bool {
    match (0..arr.len()).find(|&i| arr.get(i).and_then(schedule_name).as_deref() == Some(name)) {
        Some(i) => {
            arr.remove(i);
            true
        }
        None => false,
    }
}

/// A schedule table's name: its `name`, or else "KIND VALUE" as the parser names it.
fn schedule_name(t: &toml_edit::Table) -> Option<String> {
    if let Some(n) = t.get("name").and_then(|v| v.as_str()) {
        return Some(n.to_string());
    }
    ["every", "cron", "daily", "weekly", "monthly"]
        .iter()
        .find_map(|k| t.get(k).and_then(|v| v.as_str()).map(|v| format!("{k} {v}")))
}

/// Replace the config file with `text` (validated first): a temporary file next to it,
/// flushed, renamed over it.
pub fn write_atomic(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let cfg = Config::parse(file, text)?;
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        ConfigError::Read { file: file.into(), source }
    })?;
    Ok(cfg)
}

/// Apply edits to a config text, keeping its comments and layout: each edit names a key as
/// a dotted path (`max_delete_percent`, `conflicts.r1`, `email.host`, `pair.NAME.concurrency`,
/// `pair.NAME.bandwidth.left_to_right`) and gives a JSON value (string, number, boolean,
/// array of those; null removes the key). The result is validated.
pub fn edit_text(file: &Path, text: &str, edits: &[(String, serde_json::Value)]) -> Result<String, ConfigError> {
    let mut doc = document(file, text)?;
    for (key, value) in edits {
        apply_edit(&mut doc, file, key, value)?;
    }
    let out = doc.to_string();
    Config::parse(file, &out)?;
    Ok(out)
}

fn document(file: &Path, text: &str) -> Result<toml_edit::DocumentMut, ConfigError> {
    text.parse().map_err(|e: toml_edit::TomlError| ConfigError::Syntax {
        file: file.into(),
        message: e.to_string(),
    })
}

/// An edit that cannot be applied: `key` is the edit's dotted key.
fn bad(file: &Path, key: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        file: file.into(),
        key: key.into(),
        expected: expected.into(),
        found: "something else".into(),
    }
}

/// One edit of `edit_text`.
fn apply_edit(doc: &mut toml_edit::DocumentMut, file: &Path, key: &str, value: &serde_json::Value) -> Result<(), ConfigError> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad(file, key, "a dotted key like \"pair.NAME.concurrency\""));
    }
    // `pair.NAME`: a whole pair. An object adds the pair (or sets its keys; null
    // removes one), null removes the pair.
    if parts[0] == "pair" && parts.len() == 2 {
        return upsert_pair(doc, parts[1], value).map_err(|expected| bad(file, key, expected));
    }
    let (table, rest): (&mut toml_edit::Table, &[&str]) = if parts[0] == "pair" {
        if parts.len() < 3 {
            return Err(bad(file, key, "pair.NAME.KEY"));
        }
        let pairs = doc
            .get_mut("pair")
            .and_then(|v| v.as_array_of_tables_mut())
            .ok_or_else(|| bad(file, key, "a configured pair"))?;
        let t = pairs
            .iter_mut()
            .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(parts[1]))
            .ok_or_else(|| bad(file, key, &format!("a pair named {:?}", parts[1])))?;
        (t, &parts[2..])
    } else {
        (doc.as_table_mut(), &parts[..])
    };
    set_path(file, key, table, rest, value)
}

/// Set (or with null remove) the key at the dotted path `rest` below `table`, making the
/// tables on the way (implicit, so they take no header of their own unless they need one).
fn set_path(file: &Path, key: &str, mut table: &mut toml_edit::Table, rest: &[&str], value: &serde_json::Value) -> Result<(), ConfigError> {
    let Some((last, path)) = rest.split_last() else {
        return Ok(());
    };
    for part in path {
        let item = table.entry(part).or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        });
        table = item
            .as_table_mut()
            .ok_or_else(|| bad(file, key, &format!("{part} to be a table")))?;
    }
    let part = *last;
    if value.is_null() {
        table.remove(part);
    } else if let Some(aot) = json_to_tables(value) {
        // `schedule`, `bandwidth.window`: an array of tables, replaced whole.
        replace_tables(table, part, aot);
    } else {
        let mut v = json_to_toml(value).ok_or_else(|| bad(file, key, "a string, number, boolean or array"))?;
        // Keep the key and its value's comments where the key was there already.
        match table.get_mut(part).and_then(|i| i.as_value_mut()) {
            Some(old) => {
                *v.decor_mut() = old.decor().clone();
                *old = v;
            }
            None => {
                table.insert(part, toml_edit::Item::Value(v));
            }
        }
    }
    Ok(())
}

/// An array of JSON objects as an array of TOML tables (`[[schedule]]`); `None` for anything
/// else. An empty array is not taken for one: it stays a value.
fn json_to_tables(v: &serde_json::Value) -> Option<toml_edit::ArrayOfTables> {
    let arr = v.as_array().filter(|a| !a.is_empty() && a.iter().all(|x| x.is_object()))?;
    let mut aot = toml_edit::ArrayOfTables::new();
    for obj in arr {
        let mut t = toml_edit::Table::new();
        for (k, x) in obj.as_object()? {
            if !x.is_null() {
                t.insert(k, toml_edit::Item::Value(json_to_toml(x)?));
            }
        }
        aot.push(t);
    }
    Some(aot)
}

/// Put an array of tables in place of `key`, keeping the comment above the first old one.
fn replace_tables(table: &mut toml_edit::Table, key: &str, mut aot: toml_edit::ArrayOfTables) {
    let decor = table
        .get(key)
        .and_then(|i| i.as_array_of_tables())
        .and_then(|old| old.get(0))
        .map(|t| t.decor().clone());
    if let (Some(d), Some(first)) = (decor, aot.get_mut(0)) {
        *first.decor_mut() = d;
    }
    table.insert(key, toml_edit::Item::ArrayOfTables(aot));
}

fn upsert_pair(doc: &mut toml_edit::DocumentMut, name: &str, value: &serde_json::Value) -> Result<(), &'static str> {
    let expected = "a pair as an object of its keys (name, left, right, options), or null to remove it";
    if !doc.contains_key("pair") {
        doc.insert("pair", toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    }
    let pairs = doc
        .get_mut("pair")
        .and_then(|v| v.as_array_of_tables_mut())
        .ok_or("pairs as [[pair]] tables")?;
    let at = pairs.iter().position(|t| t.get("name").and_then(|v| v.as_str()) == Some(name));
    let obj = match value {
        serde_json::Value::Null => {
            match at {
                Some(i) => pairs.remove(i),
                None => return Err("a configured pair"),
            }
            return Ok(());
        }
        serde_json::Value::Object(o) => o,
        _ => return Err(expected),
    };
    let i = match at {
        Some(i) => i,
        None => {
            let mut t = toml_edit::Table::new();
            t.insert("name", toml_edit::value(name));
            pairs.push(t);
            pairs.len() - 1
        }
    };
    let t = pairs.get_mut(i).ok_or(expected)?;
    for (k, x) in obj {
        if k == "name" {
            continue;
        }
        if x.is_null() {
            t.remove(k);
        } else if let Some(aot) = json_to_tables(x) {
            replace_tables(t, k, aot);
        } else {
            let mut v = json_to_toml(x).ok_or(expected)?;
            if let Some(old) = t.get(k).and_then(|i| i.as_value()) {
                *v.decor_mut() = old.decor().clone();
            }
            t.insert(k, toml_edit::Item::Value(v));
        }
    }
    Ok(())
}

fn json_to_toml(v: &serde_json::Value) -> Option<toml_edit::Value> {
    Some(match v {
        serde_json::Value::String(s) => s.as_str().into(),
        serde_json::Value::Bool(b) => (*b).into(),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        serde_json::Value::Array(a) => {
            let mut arr = toml_edit::Array::new();
            for x in a {
                arr.push(json_to_toml(x)?);
            }
            toml_edit::Value::Array(arr)
        }
        // A small table (`remote = { endpoint = "...", secret_env = "..." }`); null members
        // are left out.
        serde_json::Value::Object(o) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, x) in o.iter().filter(|(_, x)| !x.is_null()) {
                t.insert(k, json_to_toml(x)?);
            }
            toml_edit::Value::InlineTable(t)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClashOption, WatchMode};

    #[test]
    fn edits_keep_comments_and_are_validated() {
        let f = Path::new("/etc/tandem.toml");
        let text =
            "# top comment\nmax_delete_percent = 50 # guard\n\n[[pair]]\nname = \"docs\" # the share\nleft = \"/a\"\nright = \"/b\"\n";
        let edits = vec![
            ("max_delete_percent".to_string(), serde_json::json!(30)),
            ("conflicts.r1".to_string(), serde_json::json!("manual")),
            ("pair.docs.concurrency".to_string(), serde_json::json!(8)),
            ("pair.docs.bandwidth.left_to_right".to_string(), serde_json::json!("5 MB")),
            ("ignore".to_string(), serde_json::json!(["*.bak", "tmp/*"])),
        ];
        let out = edit_text(f, text, &edits).unwrap();
        assert!(
            out.contains("# top comment") && out.contains("# guard") && out.contains("# the share"),
            "{out}"
        );
        let c = Config::parse(f, &out).unwrap();
        assert_eq!(c.defaults.max_delete_percent, 30);
        assert_eq!(c.defaults.rules.r1, ClashOption::Manual);
        let p = &c.pairs[0].options;
        assert_eq!((p.concurrency, p.bandwidth.left_to_right), (8, Some(5 << 20)));
        assert!(p.ignore.contains(&"tmp/*".to_string()));
        // null removes; a bad value is refused naming the key, and nothing is half applied.
        let out2 = edit_text(f, &out, &[("pair.docs.concurrency".into(), serde_json::Value::Null)]).unwrap();
        assert_eq!(Config::parse(f, &out2).unwrap().pairs[0].options.concurrency, 4);
        let e = edit_text(f, &out, &[("max_delete_percent".into(), serde_json::json!(500))]).unwrap_err();
        assert_eq!(e.key(), Some("max_delete_percent"));
        let e = edit_text(f, &out, &[("pair.nope.concurrency".into(), serde_json::json!(2))]).unwrap_err();
        assert!(e.to_string().contains("a pair named \"nope\""), "{e}");
    }

    #[test]
    fn edits_add_and_remove_pairs_and_replace_arrays_of_tables() {
        let f = Path::new("/etc/tandem.toml");
        let text = "# mine\n[[schedule]]\nevery = \"1h\"\n\n[[pair]]\nname = \"docs\" # keep\nleft = \"/a\"\nright = \"/b\"\n";
        let edits = vec![
            (
                "pair.photos".to_string(),
                serde_json::json!({"left": "/p", "right": "/q", "watch": "poll", "schedule": [{"daily": "02:00", "tz": "UTC"}]}),
            ),
            (
                "schedule".to_string(),
                serde_json::json!([{"name": "n", "cron": "0 3 * * *"}, {"every": "15m"}]),
            ),
            (
                "bandwidth.window".to_string(),
                serde_json::json!([{"from": "08:00", "to": "18:00", "left_to_right": "1 MB"}]),
            ),
            ("pair.docs.left".to_string(), serde_json::json!("/c")),
        ];
        let out = edit_text(f, text, &edits).unwrap();
        assert!(out.contains("# mine") && out.contains("# keep"), "{out}");
        let c = Config::parse(f, &out).unwrap();
        assert_eq!(c.pairs.len(), 2);
        // Absolute as the config resolves it ("/c" is on the current drive on Windows).
        assert_eq!(c.pairs[0].left, std::path::absolute("/c").unwrap());
        assert_eq!(c.pairs[1].name, "photos");
        assert_eq!(c.pairs[1].options.watch, WatchMode::Poll);
        assert_eq!(c.pairs[1].options.schedules.len(), 1);
        assert_eq!(c.defaults.schedules.len(), 2);
        assert_eq!(c.defaults.bandwidth.windows[0].left_to_right, Some(1 << 20));
        let out = edit_text(
            f,
            &out,
            &[
                ("pair.docs".into(), serde_json::Value::Null),
                ("schedule".into(), serde_json::Value::Null),
            ],
        )
        .unwrap();
        let c = Config::parse(f, &out).unwrap();
        assert_eq!(
            (c.pairs.len(), c.pairs[0].name.as_str(), c.defaults.schedules.len()),
            (1, "photos", 0)
        );
        let e = edit_text(f, &out, &[("pair.ghost".into(), serde_json::Value::Null)]).unwrap_err();
        assert_eq!(e.key(), Some("pair.ghost"));
        // A new pair without folders is refused, naming what is missing.
        let e = edit_text(f, &out, &[("pair.half".into(), serde_json::json!({"left": "/x"}))]).unwrap_err();
        assert!(e.to_string().contains("right"), "{e}");
    }

    #[test]
    fn remove_schedule_keeps_comments_and_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        let text = "# my sync\n[[schedule]]\nname = \"hourly\"\nevery = \"1h\" # all pairs\n\n[[pair]]\nname = \"a\"\nleft = \"/a\"\nright = \"/b\"\n\n[[pair.schedule]]\ndaily = \"02:00\" # nightly\n\n[[pair.schedule]]\nname = \"weekly\"\nweekly = \"SUN 03:00\"\n\n[[pair]]\nname = \"b\"\nleft = \"/c\"\nright = \"/d\"\n";
        std::fs::write(&f, text).unwrap();
        // A pair's own schedule, by its default name.
        assert!(remove_schedule(&f, "a", "daily 02:00").unwrap().contains("pair a"));
        let c = Config::load(&f).unwrap();
        let names = |p: &str| {
            c.pair(p)
                .unwrap()
                .options
                .schedules
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("a"), ["weekly"]);
        assert_eq!(names("b"), ["hourly"]);
        let now = std::fs::read_to_string(&f).unwrap();
        assert!(
            now.contains("# my sync") && now.contains("# all pairs") && !now.contains("# nightly"),
            "{now}"
        );
        // Pair a has its own list: the global one is not its to remove.
        assert!(remove_schedule(&f, "a", "hourly")
            .unwrap_err()
            .to_string()
            .contains("no such schedule"));
        assert!(remove_schedule(&f, "b", "hourly").unwrap().contains("global"));
        assert!(Config::load(&f).unwrap().pair("b").unwrap().options.schedules.is_empty());
        assert!(remove_schedule(&f, "zz", "x").unwrap_err().to_string().contains("no such pair"));
    }
}
