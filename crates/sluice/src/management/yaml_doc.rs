//! Editing one top-level key of the YAML config file while leaving every other line — other
//! keys, their comments, blank lines, `${VAR}` references — exactly as it was.
//!
//! The edited key's lines are replaced by a freshly serialised block (a trailing `# comment`
//! on a one-line value is kept); comments *inside* a multi-line value of that key are not. The
//! result is checked by parsing it: it must hold exactly the old document with the one key
//! changed. When it does not (unusual layouts: flow-style top level, anchors shared across
//! keys), the whole document is re-serialised instead, which keeps every value but no comment.
//!
//! (The format-preserving YAML editors available as crates produced invalid YAML for these
//! edits, so this small line-based splice, verified by a real parser, is used instead.)

use yaml_serde::{Mapping, Value};

/// How an edit was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Only the key's own lines changed.
    Spliced,
    /// The document was re-serialised (comments lost).
    Rewritten,
}

/// Sets top-level `key` to `value` in `text`, returning the new text.
pub fn set_top_level(text: &str, key: &str, value: &Value) -> Result<(String, Edit), String> {
    let old: Value = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        yaml_serde::from_str(text).map_err(|e| format!("the config file is not valid YAML: {e}"))?
    };
    let Value::Mapping(mut expected) = old else {
        return Err("the config file is not a YAML mapping".into());
    };
    expected.insert(Value::String(key.to_string()), value.clone());
    let expected = Value::Mapping(expected);

    if let Some(spliced) = splice(text, key, value)
        && yaml_serde::from_str::<Value>(&spliced).is_ok_and(|v| v == expected)
    {
        return Ok((spliced, Edit::Spliced));
    }
    let rewritten = yaml_serde::to_string(&expected).map_err(|e| e.to_string())?;
    Ok((rewritten, Edit::Rewritten))
}

/// `key: value` as block YAML, ending in a newline.
fn render(key: &str, value: &Value) -> Option<String> {
    let mut single = Mapping::new();
    single.insert(Value::String(key.to_string()), value.clone());
    yaml_serde::to_string(&single).ok()
}

/// A line that starts a top-level key (column 0, not a comment, sequence item or marker).
fn is_top_level_key(line: &str) -> bool {
    let Some(first) = line.chars().next() else {
        return false;
    };
    !(first.is_whitespace()
        || first == '#'
        || first == '-'
        || line.starts_with("---")
        || line.starts_with("..."))
}

/// Whether `line` is the line of top-level `key` (plain or quoted).
fn is_key_line(line: &str, key: &str) -> bool {
    [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ]
    .iter()
    .any(|prefix| {
        line.strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
    })
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

fn splice(text: &str, key: &str, value: &Value) -> Option<String> {
    let block = render(key, value)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(start) = lines
        .iter()
        .position(|l| is_key_line(l.trim_end_matches(['\n', '\r']), key))
    else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&block);
        return Some(out);
    };
    let mut end = lines[start + 1..]
        .iter()
        .position(|l| is_top_level_key(l))
        .map_or(lines.len(), |i| start + 1 + i);
    // Comments and blank lines before the next key belong to that key.
    while end > start + 1 && is_blank_or_comment(lines[end - 1]) {
        end -= 1;
    }
    let mut replacement = block;
    if end == start + 1
        && replacement.lines().count() == 1
        && let Some(comment) = trailing_comment(lines[start], key)
    {
        replacement = format!("{}{comment}\n", replacement.trim_end());
    }
    let mut out = String::with_capacity(text.len() + replacement.len());
    lines[..start].iter().for_each(|l| out.push_str(l));
    out.push_str(&replacement);
    if end < lines.len() && !replacement.ends_with('\n') {
        out.push('\n');
    }
    lines[end..].iter().for_each(|l| out.push_str(l));
    Some(out)
}

/// The `   # comment` ending a one-line `key: value`, found where the text before it still
/// parses as that key alone (so a `#` inside a quoted value is not taken for a comment).
fn trailing_comment(line: &str, key: &str) -> Option<String> {
    let line = line.trim_end_matches(['\n', '\r']);
    let mut from = 0;
    while let Some(i) = line[from..].find('#').map(|i| from + i) {
        let before = &line[..i];
        if before.ends_with([' ', '\t']) {
            let parsed: Option<Mapping> = yaml_serde::from_str(before).ok();
            if parsed.is_some_and(|m| m.len() == 1 && m.contains_key(key)) {
                let code_end = before.trim_end().len();
                return Some(line[code_end..].to_string());
            }
        }
        from = i + 1;
    }
    None
}

/// The 1-based line of a key path like `providers[1].base-url` in block-style YAML text: the
/// deepest part of the path that could be found (at least the top-level key), if any.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let top = path.split(['.', '[']).next().filter(|t| !t.is_empty())?;
    let start = lines.iter().position(|l| is_key_line(l, top))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| is_top_level_key(l))
        .map_or(lines.len(), |i| start + 1 + i);
    let mut found = start;
    let rest = &path[top.len()..];
    let Some(index) = rest
        .strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .and_then(|i| i.parse::<usize>().ok())
    else {
        return Some(found + 1);
    };
    let items: Vec<usize> = (start + 1..end)
        .filter(|&i| lines[i].trim_start().starts_with("- ") || lines[i].trim() == "-")
        .collect();
    let indent = |i: usize| lines[i].len() - lines[i].trim_start().len();
    let Some(first) = items.first().map(|&i| indent(i)) else {
        return Some(found + 1);
    };
    let items: Vec<usize> = items.into_iter().filter(|&i| indent(i) == first).collect();
    let Some(&item) = items.get(index) else {
        return Some(found + 1);
    };
    found = item;
    let item_end = items.get(index + 1).copied().unwrap_or(end);
    if let Some(field) = rest
        .split_once("].")
        .map(|(_, f)| f.split(['.', '[']).next().unwrap_or(f))
    {
        let needle = format!("{field}:");
        if let Some(i) = (item..item_end).find(|&i| {
            let t = lines[i].trim_start().trim_start_matches("- ").trim_start();
            t.starts_with(&needle)
                || lines[i].contains(&format!(" {needle}"))
                || lines[i].contains(&format!("{{{needle}"))
        }) {
            found = i;
        }
    }
    Some(found + 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const FILE: &str = "# Sluice config
listen: 127.0.0.1:0   # where to listen

# client keys
api-keys:
  - k1   # first
  - \"${KEY_TWO}\"

# Debug logging.
debug: false # off in production
quota-exceeded:
  switch-project: true
  switch-preview-model: true
providers:
- name: p   # a provider
  kind: openai-compatible
";

    fn set(text: &str, key: &str, yaml: &str) -> (String, Edit) {
        set_top_level(text, key, &yaml_serde::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn scalar_edit_keeps_everything_else_and_the_inline_comment() {
        let (out, edit) = set(FILE, "debug", "true");
        assert_eq!(edit, Edit::Spliced);
        assert_eq!(out, FILE.replace("debug: false #", "debug: true #"));
    }

    #[test]
    fn list_edit_replaces_only_its_lines() {
        let (out, edit) = set(FILE, "api-keys", "[a, 'b: c']");
        assert_eq!(edit, Edit::Spliced);
        assert!(out.contains("api-keys:\n- a\n- 'b: c'\n\n# Debug logging.\ndebug: false # off"));
        assert!(out.starts_with("# Sluice config\nlisten: 127.0.0.1:0   # where to listen\n"));
        assert!(out.ends_with("providers:\n- name: p   # a provider\n  kind: openai-compatible\n"));
    }

    #[test]
    fn nested_and_new_keys() {
        let (out, _) = set(
            FILE,
            "quota-exceeded",
            "{switch-project: false, switch-preview-model: true}",
        );
        assert!(out.contains(
            "quota-exceeded:\n  switch-project: false\n  switch-preview-model: true\nproviders:"
        ));
        let (out, edit) = set(FILE, "proxy-url", "'socks5://u:p@127.0.0.1:1080/'");
        assert_eq!(edit, Edit::Spliced);
        assert!(out.starts_with(FILE));
        assert!(out.ends_with("proxy-url: socks5://u:p@127.0.0.1:1080/\n"));
        let (out, _) = set("", "debug", "true");
        assert_eq!(out, "debug: true\n");
        let (out, _) = set("debug: false", "request-retry", "5");
        assert_eq!(out, "debug: false\nrequest-retry: 5\n");
    }

    #[test]
    fn a_hash_inside_quotes_is_not_a_comment() {
        let text = "proxy-url: 'http://x/#frag' # note\ndebug: true\n";
        let (out, _) = set(text, "proxy-url", "''");
        assert_eq!(out, "proxy-url: '' # note\ndebug: true\n");
    }

    #[test]
    fn lines_of_key_paths() {
        let text = "listen: x\nproviders:\n  - name: a\n    base-url: u\n  - name: b\n    kind: k\n    base-url: v\nproxy-url: p\nclaude-api-key: [{api-key: ''}]\n";
        assert_eq!(line_of(text, "listen"), Some(1));
        assert_eq!(line_of(text, "providers[1].base-url"), Some(7));
        assert_eq!(line_of(text, "providers[0]"), Some(3));
        assert_eq!(line_of(text, "providers[5].name"), Some(2));
        assert_eq!(line_of(text, "proxy-url"), Some(8));
        assert_eq!(line_of(text, "claude-api-key[0].api-key"), Some(9));
        assert_eq!(line_of(text, "nope"), None);
        assert_eq!(line_of(text, ""), None);
    }

    #[test]
    fn unusual_layouts_fall_back_to_a_full_rewrite() {
        let (out, edit) = set("{debug: false, listen: '127.0.0.1:1'}", "debug", "true");
        assert_eq!(edit, Edit::Rewritten);
        let v: Value = yaml_serde::from_str(&out).unwrap();
        assert_eq!(v["debug"], Value::Bool(true));
        assert_eq!(v["listen"], Value::String("127.0.0.1:1".into()));
        assert!(set_top_level("- a\n", "debug", &Value::Bool(true)).is_err());
        assert!(set_top_level("a: [", "debug", &Value::Bool(true)).is_err());
    }
}
