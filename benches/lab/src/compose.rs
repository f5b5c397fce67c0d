//! Our `docker-compose.yml`, read: a parser for the block-style YAML subset it is written in,
//! and the per-instance limits the lab's envelope applies (so that lab numbers describe the
//! deployment we submit). `tests/compose.rs` in the payrelay package reads the file with the
//! same parser to check it against the contest's rules.
//!
//! The subset: mappings, sequences of scalars, quoted or plain scalars, comments. Anything
//! outside it (anchors, flow collections, multi-line scalars) is an error, so the file is never
//! read differently from Compose in silence; `.ci/run` also validates the whole file with the
//! real Compose binary.

use std::path::Path;

/// A YAML node of the subset: a mapping (in file order), a sequence, or a scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// A mapping, in file order.
    Map(Vec<(String, Yaml)>),
    /// A sequence of scalars.
    Seq(Vec<Yaml>),
    /// A scalar, unquoted.
    Str(String),
}

impl Yaml {
    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a path of keys.
    pub fn path(&self, path: &[&str]) -> Option<&Yaml> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The scalar's text, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The node at a path of keys, or a panic naming the path (for tests: a file that is not
    /// the expected shape must fail them loudly).
    pub fn at(&self, path: &[&str]) -> &Yaml {
        path.iter().fold(self, |node, key| {
            node.get(key).unwrap_or_else(|| panic!("missing key {:?}", path.join(".")))
        })
    }

    /// The scalar's text, or a panic (for tests).
    pub fn str(&self) -> &str {
        match self {
            Yaml::Str(s) => s,
            other => panic!("expected a scalar, found {other:?}"),
        }
    }

    /// A mapping's entries, or a panic (for tests).
    pub fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            other => panic!("expected a mapping, found {other:?}"),
        }
    }

    /// A sequence's items, or a panic (for tests).
    pub fn items(&self) -> &[Yaml] {
        match self {
            Yaml::Seq(items) => items,
            other => panic!("expected a sequence, found {other:?}"),
        }
    }

    /// Every key anywhere below this node (for forbidden keys).
    pub fn all_keys(&self, out: &mut Vec<(String, Yaml)>) {
        match self {
            Yaml::Map(entries) => {
                for (k, v) in entries {
                    out.push((k.clone(), v.clone()));
                    v.all_keys(out);
                }
            }
            Yaml::Seq(items) => items.iter().for_each(|i| i.all_keys(out)),
            Yaml::Str(_) => {}
        }
    }
}

/// One meaningful line: indentation and content without its comment.
struct Line {
    number: usize,
    indent: usize,
    text: String,
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev == ' ' => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// Parses the subset; anything outside it is an error naming the line.
pub fn parse_yaml(text: &str) -> Result<Yaml, String> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.contains('\t') {
            return Err(format!("line {}: tab", i + 1));
        }
        let content = strip_comment(raw).trim_end();
        if content.trim().is_empty() || content.trim() == "---" {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        lines.push(Line { number: i + 1, indent, text: content.trim_start().to_owned() });
    }
    let mut pos = 0;
    let node = parse_block(&lines, &mut pos, 0)?;
    match lines.get(pos) {
        None => Ok(node),
        Some(line) => Err(format!("line {}: unexpected indentation", line.number)),
    }
}

fn parse_block(lines: &[Line], pos: &mut usize, indent: usize) -> Result<Yaml, String> {
    let first = lines.get(*pos).ok_or("empty block")?;
    if first.indent != indent {
        return Err(format!("line {}: unexpected indentation", first.number));
    }
    if first.text == "-" || first.text.starts_with("- ") {
        let mut items = Vec::new();
        while let Some(line) = lines.get(*pos).filter(|l| l.indent == indent) {
            let Some(rest) = line.text.strip_prefix("- ") else {
                return Err(format!("line {}: expected a sequence item", line.number));
            };
            if rest.contains(": ") || rest.ends_with(':') {
                return Err(format!("line {}: mappings in sequences are not read", line.number));
            }
            items.push(scalar(rest, line.number)?);
            *pos += 1;
        }
        return Ok(Yaml::Seq(items));
    }
    let mut entries: Vec<(String, Yaml)> = Vec::new();
    while let Some(line) = lines.get(*pos).filter(|l| l.indent == indent) {
        let (key, rest) = match line.text.split_once(": ") {
            Some((k, v)) => (k, v.trim()),
            None => match line.text.strip_suffix(':') {
                Some(k) => (k, ""),
                None => return Err(format!("line {}: expected `key: value`", line.number)),
            },
        };
        let key = match scalar(key, line.number)? {
            Yaml::Str(k) => k,
            _ => unreachable!(),
        };
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(format!("line {}: duplicate key {key}", line.number));
        }
        *pos += 1;
        let value = if rest.is_empty() {
            match lines.get(*pos) {
                Some(next) if next.indent > indent => parse_block(lines, pos, next.indent)?,
                _ => Yaml::Str(String::new()),
            }
        } else {
            scalar(rest, line.number)?
        };
        entries.push((key, value));
    }
    Ok(Yaml::Map(entries))
}

fn scalar(text: &str, number: usize) -> Result<Yaml, String> {
    let text = text.trim();
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q) {
            let inner = inner.strip_suffix(q).ok_or(format!("line {number}: open quote"))?;
            if inner.contains(q) || (q == '"' && inner.contains('\\')) {
                return Err(format!("line {number}: escapes are not read"));
            }
            return Ok(Yaml::Str(inner.to_owned()));
        }
    }
    if text.starts_with(['&', '*', '[', '{', '|', '>', '!', '<']) {
        return Err(format!("line {number}: {text:?} is outside the YAML subset read here"));
    }
    Ok(Yaml::Str(text.to_owned()))
}

/// Compose's `cpus` (`"0.74"`) in thousandths of a CPU.
pub fn cpu_millis(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = format!("{frac:0<3}").parse().ok()?;
    whole.checked_mul(1000)?.checked_add(frac)
}

/// Compose's `memory` (`170MB`, `1GB`, `512k`...) in bytes. Compose reads the units as powers
/// of 1024 (`350MB` is 367,001,600 bytes).
pub fn memory_bytes(text: &str) -> Option<u64> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let shift = match text[digits..].to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// One payrelay instance's limits in the compose file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLimits {
    /// Its service name.
    pub service: String,
    /// `deploy.resources.limits.cpus`, thousandths of a CPU.
    pub cpu_millis: u64,
    /// `deploy.resources.limits.memory`, bytes.
    pub memory_bytes: u64,
}

/// The limits of the payrelay instances of the compose file at `path`: the services that run
/// in another's network namespace (`network_mode: service:...`), by name. The holder of the
/// namespace runs no payrelay the lab starts, so its share is not applied.
pub fn instance_limits(path: &Path) -> Result<Vec<InstanceLimits>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let compose = parse_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let services = match compose.get("services") {
        Some(Yaml::Map(services)) => services,
        _ => return Err(format!("{}: no services", path.display())),
    };
    let mut instances = Vec::new();
    for (name, service) in services {
        let shared = service.get("network_mode").and_then(Yaml::as_str);
        if !shared.is_some_and(|mode| mode.starts_with("service:")) {
            continue;
        }
        let limit = |key: &str| {
            service.path(&["deploy", "resources", "limits", key]).and_then(Yaml::as_str)
        };
        let bad = |key: &str| format!("{}: {name}: no readable limits.{key}", path.display());
        instances.push(InstanceLimits {
            service: name.clone(),
            cpu_millis: limit("cpus").and_then(cpu_millis).ok_or_else(|| bad("cpus"))?,
            memory_bytes: limit("memory").and_then(memory_bytes).ok_or_else(|| bad("memory"))?,
        });
    }
    instances.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(instances)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the subset parser reads what it claims and refuses what it does not read. Method:
    /// a small document with every construct, and one input per refused construct.
    #[test]
    fn yaml_subset_parser() {
        let doc = "a:\n  b: \"x: #y\"   # comment\n  c:\n    - '1'\n    - two\n  d:\nz: 3\n";
        let parsed = parse_yaml(doc).expect("parses");
        assert_eq!(parsed.at(&["a", "b"]).str(), "x: #y");
        assert_eq!(
            parsed.at(&["a", "c"]).items(),
            &[Yaml::Str("1".into()), Yaml::Str("two".into())]
        );
        assert_eq!(parsed.at(&["a", "d"]).str(), "");
        assert_eq!(parsed.at(&["z"]).str(), "3");
        for bad in ["a: &x 1\n", "a: [1, 2]\n", "a: |\n  x\n", "a: 1\na: 2\n", "a:\n  - b: 1\n"] {
            assert!(parse_yaml(bad).is_err(), "{bad:?} should be refused");
        }
    }

    /// Goal: compose's units read as Compose reads them. Method: literals.
    #[test]
    fn units() {
        assert_eq!(cpu_millis("0.74"), Some(740));
        assert_eq!(cpu_millis("1.5"), Some(1500));
        assert_eq!(cpu_millis("0.0001"), None);
        assert_eq!(memory_bytes("350MB"), Some(367_001_600));
        assert_eq!(memory_bytes("10MB"), Some(10 << 20));
        assert_eq!(memory_bytes("1g"), Some(1 << 30));
        assert_eq!(memory_bytes("lots"), None);
    }

    /// Goal: the lab applies the limits of our own compose file: one per payrelay instance,
    /// the holder left out, and the instances with the holder inside the contest's envelope.
    /// Method: read the repository's `docker-compose.yml`.
    #[test]
    fn reads_our_compose_files_limits() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker-compose.yml");
        let limits = instance_limits(&path).expect("limits");
        let names: Vec<&str> = limits.iter().map(|l| l.service.as_str()).collect();
        assert_eq!(names, ["payrelay-a", "payrelay-b"]);
        let cpus: u64 = limits.iter().map(|l| l.cpu_millis).sum();
        let memory: u64 = limits.iter().map(|l| l.memory_bytes).sum();
        assert!(cpus <= 1500 && memory <= 350 << 20, "{limits:?}");
    }
}
