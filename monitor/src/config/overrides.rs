//! Config keys set outside the file: `--set key.path=value` on the command line and
//! `MONITOR_KEY__PATH=value` in the environment (for containers, where a file is awkward to
//! change). Values are YAML, so lists and maps work too: `--set 'rules=[bundled, /x.yaml]'`.
//! The environment applies over the file, and `--set` over both.

use serde_json::Value;

/// The top-level keys of the config file; an environment variable names a key only when its
/// first part is one of these (checked against the documented example by a test).
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "rules",
    "output",
    "rate_limit",
    "rule_matching",
    "min_priority",
    "kernel_filter",
    "kernel_filter_sets",
    "ring_buffer_bytes",
    "max_processes",
    "container_runtime",
    "state_dir",
    "data_dir",
    "metrics",
    "log",
    "self_alerts",
    "reload",
];

/// Variables the command line reads itself; they are not config keys.
const COMMAND_LINE_VARIABLES: &[&str] = &["CONFIG", "FORMAT", "LOG", "LOG_FORMAT"];

const ENV_PREFIX: &str = "MONITOR_";

/// One key set from outside the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// Where it came from, for error messages: `--set a.b=c` or `MONITOR_A__B`.
    pub origin: String,
    pub path: Vec<String>,
    pub value: Value,
}

impl Override {
    /// `key.path=value`.
    pub fn from_set(arg: &str) -> Result<Self, String> {
        let origin = format!("--set {arg}");
        let (key, value) = arg.split_once('=').ok_or_else(|| {
            format!("{origin}: expected KEY=VALUE, e.g. --set metrics.address=0.0.0.0:9376")
        })?;
        let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "{origin}: `{key}` is not a key path (parts joined by dots, e.g. rate_limit.burst)"
            ));
        }
        if !TOP_LEVEL_KEYS.contains(&path[0].as_str()) {
            return Err(format!(
                "{origin}: unknown key `{}` (known: {})",
                path[0],
                TOP_LEVEL_KEYS.join(", ")
            ));
        }
        let value = parse_value(value).map_err(|e| format!("{origin}: {e}"))?;
        Ok(Self { origin, path, value })
    }

    /// The environment's `MONITOR_*` config keys, in name order (so the result does not depend on
    /// the environment's order); also the names that look like keys but are not, to be warned about.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Vec<Self>, Vec<String>), String> {
        let mut found = Vec::new();
        let mut unknown = Vec::new();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
            if COMMAND_LINE_VARIABLES.contains(&rest) {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) || !TOP_LEVEL_KEYS.contains(&path[0].as_str()) {
                unknown.push(name);
                continue;
            }
            let value = parse_value(&value).map_err(|e| format!("{name}: {e}"))?;
            found.push(Self { origin: name, path, value });
        }
        found.sort_by(|a: &Self, b: &Self| a.origin.cmp(&b.origin));
        unknown.sort();
        Ok((found, unknown))
    }

    /// Sets the key in `doc` (the config file as a tree), creating the maps on the way.
    pub fn apply(&self, doc: &mut Value) -> Result<(), String> {
        let mut node = doc;
        for (i, part) in self.path.iter().enumerate() {
            if node.is_null() {
                *node = Value::Object(serde_json::Map::new());
            }
            let Value::Object(map) = node else {
                return Err(format!(
                    "{}: `{}` is not a section, so it has no key `{part}`",
                    self.origin,
                    self.path[..i].join(".")
                ));
            };
            node = map.entry(part.clone()).or_insert(Value::Null);
        }
        *node = self.value.clone();
        Ok(())
    }
}

/// A value as YAML: `5` is a number, `[a, b]` a list, `{type: stdout}` a map, anything else
/// text; empty is null (for an optional key such as metrics.address: off).
fn parse_value(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        let msg = e.to_string();
        format!("the value is not valid YAML: {}", msg.lines().next().unwrap_or("invalid"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn set_parses_key_paths_and_yaml_values() {
        let o = Override::from_set("rate_limit.burst=5").unwrap();
        assert_eq!(o.path, ["rate_limit", "burst"]);
        assert_eq!(o.value, serde_json::json!(5));
        let o = Override::from_set("rules=[bundled, /x.yaml]").unwrap();
        assert_eq!(o.value, serde_json::json!(["bundled", "/x.yaml"]));
        let o = Override::from_set("metrics.address=0.0.0.0:9376").unwrap();
        assert_eq!(o.value, serde_json::json!("0.0.0.0:9376"));
        assert!(Override::from_set("rate_limit").unwrap_err().contains("expected KEY=VALUE"));
        assert!(Override::from_set("rulez=1").unwrap_err().contains("unknown key `rulez`"));
        assert!(Override::from_set("a..b=1").unwrap_err().contains("not a key path"));
    }

    #[test]
    fn environment_names_map_onto_keys() {
        let (found, unknown) = Override::from_env(env(&[
            ("MONITOR_RATE_LIMIT__PER_SECOND", "2.5"),
            ("MONITOR_OUTPUT__SINKS", "[{type: stdout}]"),
            ("MONITOR_LOG_FORMAT", "json"),
            ("MONITOR_CONFIG", "/x"),
            ("MONITOR_RATELIMIT", "1"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        let paths: Vec<String> = found.iter().map(|o| o.path.join(".")).collect();
        assert_eq!(paths, ["output.sinks", "rate_limit.per_second"]);
        assert_eq!(found[0].value, serde_json::json!([{"type": "stdout"}]));
        assert_eq!(unknown, ["MONITOR_RATELIMIT"]);
    }

    #[test]
    fn apply_creates_sections_and_refuses_to_descend_into_values() {
        let mut doc = serde_json::json!({"rate_limit": {"burst": 1}, "min_priority": "debug"});
        Override::from_set("rate_limit.per_second=3").unwrap().apply(&mut doc).unwrap();
        Override::from_set("metrics.address=").unwrap().apply(&mut doc).unwrap();
        assert_eq!(doc["rate_limit"], serde_json::json!({"burst": 1, "per_second": 3}));
        assert_eq!(doc["metrics"], serde_json::json!({"address": null}));
        let e = Override::from_set("min_priority.x=1").unwrap().apply(&mut doc).unwrap_err();
        assert!(e.contains("`min_priority` is not a section"), "{e}");
    }
}
