//! Goal: the deployment files obey the contest's rules (`docker-compose.yml`: the 1.5 CPU /
//! 350 MB envelope, no host networking, no privileged containers, no replicas, port 9999
//! published once, the external `payment-processor` network, the second instance in the first
//! one's network namespace, one image, crosswise peer links, real payrelay variables) and the
//! seccomp profile beside it allows io_uring and every syscall payrelay was recorded making.
//!
//! Method: read the files themselves, without Docker. The compose file is read with the lab's
//! parser for the block-style YAML subset it is written in (`rinha_lab::compose`): anything
//! outside that subset is an error, so the test can never read the file differently from
//! Compose in silence. `.ci/run` also validates the whole file with the real Compose binary.
//! Each ready-made `tuning/*.env` profile must parse, too.

use std::collections::BTreeSet;

use payrelay::config::{Config, ENV_VARS};
use rinha_lab::compose::{Yaml, cpu_millis, memory_bytes, parse_yaml};

fn root(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

// ---- The compose file -------------------------------------------------------------------

/// `KEY=VALUE` lines of an env file (comments and blanks skipped).
fn env_file(path: &str) -> Vec<(String, String)> {
    root(path)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (k, v) = line.split_once('=').expect("KEY=VALUE");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// A compose duration (`10s`, `1m30s`, `500ms`) in ms.
fn duration_ms(text: &str) -> u64 {
    let mut total = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).expect("duration unit");
        let value: u64 = rest[..digits].parse().expect("duration number");
        let unit_end =
            rest[digits..].find(|c: char| c.is_ascii_digit()).map_or(rest.len(), |i| i + digits);
        total += value
            * match &rest[digits..unit_end] {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                unit => panic!("duration {text:?}: unit {unit:?}"),
            };
        rest = &rest[unit_end..];
    }
    total
}

#[test]
fn compose_obeys_the_contest_rules() {
    let compose = parse_yaml(&root("docker-compose.yml")).expect("docker-compose.yml parses");
    let services = compose.at(&["services"]).entries();
    assert!(services.len() >= 2, "at least two instances serve the API");

    // The envelope, summed over every service, memory written in MB.
    let (mut cpus, mut memory_mb) = (0, 0);
    for (name, service) in services {
        let limits = service.at(&["deploy", "resources", "limits"]);
        cpus += cpu_millis(limits.at(&["cpus"]).str()).expect("cpus with at most 3 decimals");
        let memory = limits.at(&["memory"]).str();
        let mb = memory.strip_suffix("MB").unwrap_or_else(|| panic!("{name}: memory in MB"));
        memory_mb += mb.parse::<u64>().expect("memory MB");
    }
    assert!(cpus <= 1500, "cpus add up to {cpus}/1000 > 1.5");
    assert!(memory_mb <= 350, "memory adds up to {memory_mb}MB > 350MB");

    // Forbidden anywhere.
    let mut keys = Vec::new();
    compose.all_keys(&mut keys);
    for (key, value) in &keys {
        assert_ne!(key, "privileged", "privileged containers are not allowed");
        assert_ne!(key, "replicas", "deploy.replicas is not allowed");
        if key == "network_mode" {
            assert_ne!(value.str(), "host", "host networking is not allowed");
        }
    }

    // Port 9999 published once, by the holder of the network namespace (`payrelay hold`), which
    // is on the processors' network.
    let publishers: Vec<&str> = services
        .iter()
        .filter(|(_, s)| {
            s.get("ports").is_some_and(|p| p.items().iter().any(|p| p.str().starts_with("9999:")))
        })
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(publishers.len(), 1, "9999 must be published exactly once: {publishers:?}");
    let (holder_name, holder) = services.iter().find(|(n, _)| n == publishers[0]).expect("holder");
    assert_eq!(holder.at(&["ports"]).items(), &[Yaml::Str("9999:9999".into())]);
    assert_eq!(holder.at(&["command"]).items(), &[Yaml::Str("hold".into())], "it only holds");
    assert_eq!(compose.at(&["networks", "payment-processor", "external"]).str(), "true");
    assert!(
        holder.at(&["networks"]).items().contains(&Yaml::Str("payment-processor".into())),
        "{holder_name} must be on the payment-processor network"
    );

    // Both instances live in the holder's network namespace, run its image, and come back by
    // themselves when they die: either one can, and the other keeps the port.
    let instances: Vec<&(String, Yaml)> =
        services.iter().filter(|(n, _)| n != holder_name).collect();
    assert_eq!(instances.len(), 2, "two API instances besides {holder_name}");
    for (name, service) in &instances {
        assert_eq!(service.at(&["network_mode"]).str(), format!("service:{holder_name}"));
        assert!(service.get("ports").is_none(), "{name} shares {holder_name}'s published port");
        assert!(service.get("networks").is_none(), "{name} shares {holder_name}'s networks");
        assert_eq!(service.at(&["image"]).str(), holder.at(&["image"]).str(), "one image");
        assert_eq!(service.at(&["restart"]).str(), "on-failure", "{name} restarts");
    }
    let [(a_name, a), (b_name, b)] = [instances[0], instances[1]].map(|(n, s)| (n, s));

    // Environment: the contest profile plus per-instance values, all real variables, parsed
    // by payrelay's own Config; peer links crosswise on loopback, never on 9999.
    let profile = env_file("tuning/contest.env");
    let drain_ms: u64 = profile
        .iter()
        .find(|(k, _)| k == "DRAIN_DEADLINE_MS")
        .expect("drain deadline")
        .1
        .parse()
        .unwrap();
    let mut configs = Vec::new();
    for (name, service) in [(a_name, a), (b_name, b)] {
        assert_eq!(service.at(&["env_file"]).str(), "tuning/contest.env", "{name}: env_file");
        let mut env = profile.clone();
        for (key, value) in service.at(&["environment"]).entries() {
            assert!(ENV_VARS.contains(&key.as_str()), "{name}: {key} is not a payrelay variable");
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.str().to_owned()));
        }
        for (key, _) in &env {
            assert!(ENV_VARS.contains(&key.as_str()), "{name}: {key} is not a payrelay variable");
        }
        // Within the service's memory limit, as the container reads it from its cgroup.
        let memory = service.at(&["deploy", "resources", "limits", "memory"]).str();
        let memory_bytes = memory_bytes(memory).unwrap_or_else(|| panic!("{name}: {memory}"));
        let lookup = |var: &str| env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone());
        let config = Config::from_lookup_within(lookup, Some(memory_bytes))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.api_bind_addr.to_string(), "0.0.0.0:9999", "{name}");
        // Room for many times the contest's ~300 connections per instance, and the number the
        // tuning documents give.
        let cap = config.connections_max;
        assert!(cap >= 2048, "{name}: CONNECTIONS_MAX derives {cap} in {memory}");
        let (thousands, rest) = (cap / 1000, cap % 1000);
        let written =
            if thousands > 0 { format!("{thousands},{rest:03}") } else { cap.to_string() };
        for doc in ["tuning/README.md", "tuning/contest.env"] {
            assert!(root(doc).contains(&written), "{doc} should give the contest's cap, {written}");
        }
        assert_eq!(config.processor_default_url, "http://payment-processor-default:8080");
        assert_eq!(config.processor_fallback_url, "http://payment-processor-fallback:8080");

        // Container settings.
        let opts: Vec<&str> = service.at(&["security_opt"]).items().iter().map(Yaml::str).collect();
        let profile_file = opts
            .iter()
            .find_map(|o| o.strip_prefix("seccomp="))
            .unwrap_or_else(|| panic!("{name}: a seccomp profile"));
        assert_ne!(profile_file, "unconfined", "{name}: seccomp stays on");
        assert!(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(profile_file).is_file(),
            "{name}: {profile_file} beside the compose file"
        );
        for limit in ["soft", "hard"] {
            let nofile: u64 = service.at(&["ulimits", "nofile", limit]).str().parse().unwrap();
            assert!(nofile >= 16_384, "{name}: nofile {limit} {nofile} is too low");
        }
        let grace = duration_ms(service.at(&["stop_grace_period"]).str());
        assert!(grace > drain_ms, "{name}: stop_grace_period {grace} ms <= drain {drain_ms} ms");
        configs.push(config);
    }
    let (ca, cb) = (&configs[0], &configs[1]);
    let (pa, pb) = (ca.peer_bind_addr.expect("A's peer link"), cb.peer_bind_addr.expect("B's"));
    assert_eq!(ca.peer_addr, Some(pb), "A calls B's peer link");
    assert_eq!(cb.peer_addr, Some(pa), "B calls A's peer link");
    assert_ne!(pa, pb);
    for addr in [pa, pb] {
        assert!(addr.ip().is_loopback() && addr.port() != 9999, "peer link {addr}");
    }
    // The two instances never pin the same CPU.
    assert_eq!(cb.worker_cpu_first, ca.worker_cpu_first + ca.workers(), "WORKER_CPU_FIRST");
}

// ---- The seccomp profile ----------------------------------------------------------------

/// Syscall names of a list file (`#` comments).
fn syscall_list(path: &str) -> BTreeSet<String> {
    root(path)
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Goal: the profile beside the compose file is Docker's own default profile with the io_uring
/// calls allowed (so the container runtime finds whatever it needs before `execve`, whatever
/// its version), and it allows every call payrelay was recorded making. Method: read the
/// profile's rules as Docker applies them to an amd64 container without added capabilities.
#[test]
fn seccomp_profile_allows_io_uring_and_what_payrelay_uses() {
    let profile: serde_json::Value =
        serde_json::from_str(&root("seccomp-io_uring.json")).expect("valid JSON");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO", "an allowlist, not a denylist");
    let rules = profile["syscalls"].as_array().expect("syscalls");
    // Docker's default: one plain allowlist first, then rules by architecture and capability.
    assert!(rules.len() > 10, "not Docker's default profile: {} rules", rules.len());
    let names = |rule: &serde_json::Value| -> Vec<String> {
        let names = rule["names"].as_array().expect("names");
        names.iter().map(|n| n.as_str().expect("a name").to_owned()).collect()
    };
    let applies_to_us = |rule: &serde_json::Value| {
        let empty = serde_json::json!({});
        let includes = rule.get("includes").unwrap_or(&empty);
        let arch_ok = includes
            .get("arches")
            .and_then(|a| a.as_array())
            .is_none_or(|arches| arches.iter().any(|a| a == "amd64"));
        let no_caps = includes.get("caps").and_then(|c| c.as_array()).is_none_or(Vec::is_empty);
        let no_args = rule.get("args").and_then(|a| a.as_array()).is_none_or(Vec::is_empty);
        arch_ok && no_caps && no_args
    };
    let mut allowed = BTreeSet::new();
    // Refused with ENOSYS (Docker's answer to clone3): glibc then falls back (to clone).
    let mut fall_back = BTreeSet::new();
    for rule in rules {
        if rule["action"] == "SCMP_ACT_ALLOW" && applies_to_us(rule) {
            allowed.extend(names(rule));
        } else if rule["action"] == "SCMP_ACT_ERRNO" && rule["errnoRet"] == 38 {
            fall_back.extend(names(rule));
        }
    }
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(names(&rules[0]).iter().any(|n| n == call), "{call} must be allowed, plainly");
        let refused = rules
            .iter()
            .any(|r| r["action"] != "SCMP_ACT_ALLOW" && names(r).iter().any(|n| n == call));
        assert!(!refused, "{call} refused by a rule");
    }
    // What runc was seen to need before execve, which a profile of payrelay's own calls missed.
    for call in ["fstatfs", "statfs", "close_range", "execve"] {
        assert!(allowed.contains(call), "{call} must be allowed");
    }
    let recorded = syscall_list("tuning/seccomp-syscalls.txt");
    assert!(recorded.contains("io_uring_enter") && recorded.contains("epoll_wait"));
    let missing: Vec<_> =
        recorded.iter().filter(|c| !allowed.contains(*c) && !fall_back.contains(*c)).collect();
    assert!(missing.is_empty(), "recorded but not allowed: {missing:?}");
}

// ---- The ready-made profiles ------------------------------------------------------------

/// Goal: every profile in `tuning/*.env` sets only payrelay variables, to values payrelay
/// accepts. Method: read each file and parse it with `Config::from_lookup`, as `main` would.
#[test]
fn every_tuning_profile_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("tuning/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "env") {
            continue;
        }
        let name = format!("tuning/{}", path.file_name().unwrap().to_string_lossy());
        let pairs = env_file(&name);
        for (key, _) in &pairs {
            assert!(ENV_VARS.contains(&key.as_str()), "{name}: {key} is not a payrelay variable");
        }
        Config::from_lookup(|var| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
    }
    assert!(seen >= 2, "contest.env and big-box.env at least");
}

/// Goal: `info.json` has every field the contest's submission format names, with its type.
/// Method: parse it; strings for `name` and `source-code-repo`, arrays of strings otherwise.
/// (Placeholders marked `REPLACE-ME` are allowed here; the README says to fill them in.)
#[test]
fn info_json_has_the_submission_fields() {
    let info: serde_json::Value = serde_json::from_str(&root("info.json")).expect("valid JSON");
    for key in ["name", "source-code-repo"] {
        assert!(info[key].as_str().is_some_and(|s| !s.is_empty()), "{key}: a string");
    }
    for key in ["social", "langs", "storages", "messaging", "load-balancers", "other-technologies"]
    {
        let list = info[key].as_array().unwrap_or_else(|| panic!("{key}: an array"));
        assert!(list.iter().all(|v| v.is_string()), "{key}: strings");
    }
    assert!(info["langs"].as_array().unwrap().iter().any(|l| l == "rust"));
}

// ---- The submission folder ----------------------------------------------------------------

/// Goal: `deploy/submission.sh` assembles a folder that the compose file can run from alone:
/// every file the compose file reads (`env_file`, the `seccomp=` profile) is in it at the same
/// relative path, and the image placeholder is replaced when an image is named. Method: run the
/// script into a temporary folder and read the compose file found there.
#[test]
fn the_submission_folder_holds_what_compose_reads() {
    let out = std::env::temp_dir().join(format!("payrelay-submission-{}", std::process::id()));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/submission.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("bash runs");
    assert!(status.success(), "deploy/submission.sh failed");
    let compose_text = std::fs::read_to_string(out.join("docker-compose.yml")).expect("compose");
    let compose = parse_yaml(&compose_text).expect("parses");
    let mut read = BTreeSet::new();
    for (_, service) in compose.at(&["services"]).entries() {
        if let Some(env_file) = service.get("env_file") {
            read.insert(env_file.str().to_owned());
        }
        for opt in service.get("security_opt").map(Yaml::items).unwrap_or_default() {
            if let Some(profile) = opt.str().strip_prefix("seccomp=") {
                read.insert(profile.to_owned());
            }
        }
    }
    assert!(read.contains("tuning/contest.env") && read.contains("seccomp-io_uring.json"));
    for file in read.iter().map(String::as_str).chain(["info.json", "README.md"]) {
        assert!(out.join(file).is_file(), "{file} is missing from the submission folder");
    }
    let _ = std::fs::remove_dir_all(&out);
}
