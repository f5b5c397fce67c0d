//! Goal: the source keeps the shape the README describes. The import graph of `src/` (one node
//! per file) has no circle, nor has the lab's (`benches/lab/src`, the `rinha-lab` crate: there a
//! folder's `mod.rs` puts its files together and none of them imports it back), and its arrows run down the layers: `boot` on top, then the flows
//! (`accept`, `forward`, `summary`), then the core (`cores/mod.rs`, which holds everything
//! below), then the state and the support modules a core holds. State never imports the core
//! or a flow: the parts a core owns know nothing of it.
//!
//! Method: read every file of `src/` as text (no parser: comments, strings and unit tests cut
//! away), collect the paths it names (`use` trees, and `crate::`, `super::` and `self::` paths
//! in code), resolve each to the deepest module it reaches, and check the graph. In the manner
//! of TigerBeetle's `tidy.zig`: a test that reads the tree, so a change that breaks the rule
//! fails CI with the names of the files that broke it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// Where a module stands. An import may only point to its own layer or one below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// Types a core holds, and support: they import nothing above them.
    State,
    /// `cores/mod.rs`: the core, holding the state.
    Core,
    /// Tasks and handlers that take `&Core`.
    Flow,
    /// `boot`: threads, runtimes, listeners.
    Top,
}

/// The layer of a module, by its path. Everything not named is state or support.
fn layer(module: &str) -> Layer {
    let first = module.split("::").next().unwrap_or(module);
    match first {
        "boot" => Layer::Top,
        "accept" | "forward" | "summary" => Layer::Flow,
        "cores" if module == "cores" => Layer::Core,
        _ => Layer::State,
    }
}

/// `src/a/b.rs` → `a::b`; `src/a/mod.rs` → `a`. `lib.rs` and `main.rs` (the crate roots) are
/// not modules of the graph.
fn module_of(relative: &Path) -> Option<String> {
    let mut parts: Vec<String> =
        relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    let file = parts.pop()?;
    let stem = file.strip_suffix(".rs")?;
    match stem {
        "lib" | "main" if parts.is_empty() => return None,
        "mod" => {}
        _ => parts.push(stem.to_owned()),
    }
    Some(parts.join("::"))
}

fn read_modules(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            read_modules(&path, root, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let relative = path.strip_prefix(root).expect("under src/");
            if let Some(module) = module_of(relative) {
                let text = fs::read_to_string(&path).expect("a source file");
                out.insert(module, code_only(&text));
            }
        }
    }
}

/// The text without comments, string and char literals, and the unit tests (which may reach
/// anywhere). Lifetimes (`'a`) are kept apart from char literals (`'a'`, `'\n'`).
fn code_only(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if let Some(len) = raw_string_len(rest) {
            i += len;
            out.push_str("\"\"");
        } else if rest.starts_with('"') {
            i += string_len(rest);
            out.push_str("\"\"");
        } else if let Some(len) = char_literal_len(rest) {
            i += len;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `"..."` with escapes, starting at its opening quote.
fn string_len(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `r"..."`, `r#"..."#`, `br"..."`: their length, if `rest` starts with one.
fn raw_string_len(rest: &str) -> Option<usize> {
    let after_b = rest.strip_prefix('b').unwrap_or(rest);
    let after_r = after_b.strip_prefix('r')?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    let body = after_r[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&close)?;
    Some(rest.len() - body.len() + end + close.len())
}

/// `'x'`, `'\n'`, `'\u{..}'` (a `b` prefix is read as an identifier before it): its length,
/// if `rest` starts with one rather than a lifetime.
fn char_literal_len(rest: &str) -> Option<usize> {
    let body = rest.strip_prefix('\'')?;
    if let Some(escaped) = body.strip_prefix('\\') {
        return Some(2 + escaped.find('\'')? + 1);
    }
    let c = body.chars().next()?;
    body[c.len_utf8()..].starts_with('\'').then(|| 1 + c.len_utf8() + 1)
}

/// Every path named by the `use` declarations of `code`, each as its segments, trees expanded
/// (`use a::{b, c::d}` gives `a::b` and `a::c::d`).
fn use_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = find_keyword(rest, "use") {
        let after = &rest[at + 3..];
        let end = after.find(';').unwrap_or(after.len());
        expand_tree(&after[..end], &mut Vec::new(), &mut paths);
        rest = &after[end..];
    }
    paths
}

/// The byte offset of `keyword` as a whole word in `text`.
fn find_keyword(text: &str, keyword: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(found) = text[from..].find(keyword) {
        let at = from + found;
        let before = text[..at].chars().next_back();
        let after = text[at + keyword.len()..].chars().next();
        if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
            return Some(at);
        }
        from = at + keyword.len();
    }
    None
}

/// Expands one use tree under `prefix` into `out`.
fn expand_tree(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = segments(&tree[..open]);
        let close = tree.rfind('}').expect("a use tree's braces close");
        let depth = prefix.len();
        prefix.extend(head);
        for item in split_top_level(&tree[open + 1..close]) {
            expand_tree(item, prefix, out);
        }
        prefix.truncate(depth);
    } else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        let mut full = prefix.clone();
        full.extend(segments(path).into_iter().filter(|s| s != "self" || prefix.is_empty()));
        if !full.is_empty() {
            out.push(full);
        }
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Splits `a, b::{c, d}, e` at the commas outside braces.
fn split_top_level(list: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&list[start..]);
    items.into_iter().filter(|item| !item.trim().is_empty()).collect()
}

/// `crate::a::b`, `super::x`, `self::y` written in code, outside `use` declarations.
fn inline_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for root in ["crate", "super", "self"] {
        let mut from = 0;
        while let Some(found) = find_keyword(&code[from..], root) {
            let at = from + found;
            let tail = &code[at..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            let path = segments(&tail[..len]);
            if path.len() > 1 {
                paths.push(path);
            }
            from = at + root.len();
        }
    }
    paths
}

/// The deepest module a path reaches from `module`, or `None` for a path outside the crate
/// (std, a dependency) or to an item of the file itself. `self` is the module, `super` its
/// parent, whether the module is a file or a folder's `mod.rs`.
fn resolve(module: &str, path: &[String], modules: &BTreeMap<String, String>) -> Option<String> {
    let mut current: Vec<&str> = module.split("::").collect();
    let mut rest = path;
    match rest.first().map(String::as_str)? {
        "crate" => {
            current.clear();
            rest = &rest[1..];
        }
        "self" => rest = &rest[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                current.pop();
                rest = &rest[1..];
            }
        }
        // 2018 paths: a child module named without `self::`; anything else is not ours.
        first if modules.contains_key(&format!("{module}::{first}")) => {}
        _ => return None,
    }
    let mut reached = Some(current.join("::")).filter(|m| modules.contains_key(m));
    for segment in rest {
        current.push(segment);
        let name = current.join("::");
        if !modules.contains_key(&name) {
            break;
        }
        reached = Some(name);
    }
    reached
}

/// Every file's imports: module → modules it names (itself excluded).
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules = BTreeMap::new();
    read_modules(src, src, &mut modules);
    let mut graph = BTreeMap::new();
    for (module, code) in &modules {
        let mut targets = BTreeSet::new();
        for path in use_paths(code).into_iter().chain(inline_paths(code)) {
            if let Some(target) = resolve(module, &path, &modules)
                && target != *module
            {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// A circle of the graph, as the modules along it, if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|n| n == node).expect("an open node is stacked");
                let mut circle = stack[from..].to_vec();
                circle.push(node.to_owned());
                return Some(circle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, marks, stack) {
                return Some(circle);
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph.keys().find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

fn src() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

#[test]
fn the_import_graph_has_no_circle() {
    let graph = import_graph(src());
    if let Some(circle) = find_circle(&graph) {
        panic!("src/ has an import circle: {}", circle.join(" -> "));
    }
}

fn lab_src() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/lab/src"))
}

#[test]
fn the_labs_import_graph_has_no_circle() {
    let graph = import_graph(lab_src());
    assert!(graph.contains_key("contest") && graph.contains_key("report::run"), "{graph:?}");
    if let Some(circle) = find_circle(&graph) {
        panic!("benches/lab/src has an import circle: {}", circle.join(" -> "));
    }
}

#[test]
fn imports_run_down_the_layers() {
    let graph = import_graph(src());
    let mut wrong = Vec::new();
    for (module, targets) in &graph {
        for target in targets {
            if layer(target) > layer(module) {
                wrong.push(format!(
                    "{module} ({:?}) imports {target} ({:?})",
                    layer(module),
                    layer(target)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that run up:\n{}", wrong.join("\n"));
}

/// Goal: the reader sees what it must, so that the two tests above can fail. Method: a
/// synthetic tree with a circle and an upward import.
#[test]
fn the_reader_finds_imports_of_every_form() {
    let dir = std::env::temp_dir().join(format!("payrelay-layout-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("a temporary folder");
        fs::write(path, text).expect("a temporary file");
    };
    write("lib.rs", "pub mod cores; pub mod ledger; pub mod upstream;");
    write("cores/mod.rs", "pub mod queue;\nuse crate::{ledger::Shard, upstream::Upstream};");
    write("cores/queue.rs", "// crate::boot in a comment\nconst S: &str = \"crate::boot\";");
    write("ledger.rs", "fn f() { let c = '\"'; crate::upstream::route::decide(); }");
    write("upstream/mod.rs", "pub mod route;\npub use route::Route;");
    write("upstream/route.rs", "use super::{Upstream, super::cores::Core as C};");
    let graph = import_graph(&dir);
    fs::remove_dir_all(&dir).expect("the temporary tree is removed");
    let names = |m: &str| graph[m].iter().cloned().collect::<Vec<_>>();
    assert_eq!(names("cores"), ["ledger", "upstream"]);
    assert!(names("cores::queue").is_empty(), "comments and strings are not imports");
    assert_eq!(names("ledger"), ["upstream::route"], "a path in code is an import");
    assert_eq!(names("upstream"), ["upstream::route"], "a re-export is an import");
    assert_eq!(names("upstream::route"), ["cores", "upstream"]);
    assert!(find_circle(&graph).is_some());
    assert!(layer("upstream::route") < layer("cores"), "state importing the core runs up");
}

/// Goal: the documents name only files that exist, so a moved module cannot leave a README
/// pointing at its old place. Method: every backquoted path of a tracked folder in the
/// Markdown documents, looked up from the repository's root or the document's own folder.
#[test]
fn documents_name_only_files_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let documents = [
        "README.md",
        "tuning/README.md",
        "benches/lab/README.md",
        "fuzz/README.md",
        "docs/measured.md",
        "docs/http-codec.md",
        "docs/consistency.md",
        "docs/failures.md",
        "docs/deployment.md",
        "docs/observability.md",
    ];
    let folders = ["src/", "tests/", "benches/", "deploy/", "tuning/", "fuzz/", ".ci/"];
    let mut missing = Vec::new();
    for document in documents {
        let text = fs::read_to_string(root.join(document)).expect(document);
        let here = root.join(document).parent().expect("a folder").to_path_buf();
        for quoted in text.split('`').skip(1).step_by(2) {
            let path = quoted.split([' ', '(', ':']).next().unwrap_or(quoted);
            let looks_like_a_file = folders.iter().any(|f| path.starts_with(f))
                && (path.ends_with(".rs") || path.ends_with('/') || path.ends_with(".sh"));
            if looks_like_a_file && !root.join(path).exists() && !here.join(path).exists() {
                missing.push(format!("{document}: {path}"));
            }
        }
    }
    assert!(missing.is_empty(), "documents name files that do not exist:\n{}", missing.join("\n"));
}
