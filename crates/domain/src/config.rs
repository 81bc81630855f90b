//! The configuration reference: one table per process, rendered into `docs/configuration.md`
//! and checked against each process's settings struct so the two cannot drift.

use serde_json::Value;

/// The documented default of an optional setting with no value by default (distinct from
/// `None`, which means required).
pub const UNSET: &str = "(unset)";

/// One documented `POWERNODE_*` variable.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// Settings field (`database_url`); the variable is `POWERNODE_` + upper case.
    pub key: &'static str,
    /// Default as rendered in the document; `None` = required, `Some(UNSET)` = optional and
    /// unset by default.
    pub default: Option<&'static str>,
    pub doc: &'static str,
    /// Printed as `[REDACTED]` by `config`.
    pub secret: bool,
}

impl SettingDoc {
    pub fn var(&self) -> String {
        format!("POWERNODE_{}", self.key.to_uppercase())
    }
}

/// Declares a process's settings once: each line gives the field, its type, its default value,
/// the default as the reference prints it (`None` = required), whether it is secret, and what
/// it does. From that one declaration come the raw settings struct the file and environment
/// are read into (`RawSettings`, with `Default`), and the reference table (`REFERENCE`) that
/// `config`, `docs/configuration.md` and the environment example are rendered from. The
/// caller's validation turns `RawSettings` into its typed settings.
///
/// ```ignore
/// settings! {
///     http_listen: String = "127.0.0.1:3000".to_owned(), Some("127.0.0.1:3000"), false,
///         "address of the operator API";
/// }
/// ```
#[macro_export]
macro_rules! settings {
    ($( $key:ident : $ty:ty = $default:expr, $shown:expr, $secret:expr, $doc:expr; )+) => {
        /// What the file and environment may hold (one field per declared setting). Required
        /// values are `Option` so that a missing one is named by its variable.
        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        struct RawSettings {
            $( $key: $ty, )+
        }

        impl Default for RawSettings {
            fn default() -> Self {
                RawSettings {
                    $( $key: $default, )+
                }
            }
        }

        /// Every setting, its default and what it does (from the same declaration).
        pub const REFERENCE: &[$crate::config::SettingDoc] = &[
            $( $crate::config::SettingDoc {
                key: stringify!($key),
                default: $shown,
                doc: $doc,
                secret: $secret,
            }, )+
        ];
    };
}

/// A markdown table of `docs`.
pub fn render_markdown(title: &str, docs: &[SettingDoc]) -> String {
    let mut out = format!("## {title}\n\n| variable | default | meaning |\n|---|---|---|\n");
    for d in docs {
        let default = match d.default {
            None => "— (required)".to_owned(),
            Some(UNSET) => "— (unset)".to_owned(),
            Some(v) => format!("`{v}`"),
        };
        out.push_str(&format!("| `{}` | {default} | {} |\n", d.var(), d.doc));
    }
    out
}

/// An `EnvironmentFile` section: required variables as `VAR=` to fill in, optional ones
/// commented out with their default. Keys in `skip` (already written by an earlier section of
/// the same file) are left out so that one file serves every process.
pub fn render_env(title: &str, docs: &[SettingDoc], skip: &[&str]) -> String {
    let mut out = format!("# ---- {title} ----\n");
    for d in docs.iter().filter(|d| !skip.contains(&d.key)) {
        let plain = d.doc.replace('`', "");
        match d.default {
            None => out.push_str(&format!("# {plain} (required)\n{}=\n", d.var())),
            // Optional without a default: left commented out, so the variable stays unset.
            Some(UNSET) => out.push_str(&format!("# {plain} (optional)\n#{}=\n", d.var())),
            Some(v) => out.push_str(&format!("# {plain} (default: {v})\n#{}={v}\n", d.var())),
        }
    }
    out
}

/// Renders a default value the way the reference writes it.
pub fn render_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Differences between the serialised defaults of a settings struct and its reference:
/// undocumented keys, documented keys that do not exist, and defaults that disagree.
pub fn drift(defaults: &Value, docs: &[SettingDoc], skip: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(map) = defaults.as_object() else {
        return vec!["settings defaults are not an object".to_owned()];
    };
    for (key, value) in map {
        if skip.contains(&key.as_str()) {
            continue;
        }
        match docs.iter().find(|d| d.key == key) {
            None => problems.push(format!("{key} is not documented")),
            Some(d)
                if d.default.filter(|v| *v != UNSET).map(str::to_owned) != render_value(value) =>
            {
                problems.push(format!(
                    "{key}: documented default {:?}, code default {:?}",
                    d.default,
                    render_value(value)
                ))
            }
            Some(_) => {}
        }
    }
    for d in docs {
        if !map.contains_key(d.key) && !skip.contains(&d.key) {
            problems.push(format!("{} is documented but not a setting", d.key));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DOCS: &[SettingDoc] = &[
        SettingDoc {
            key: "a",
            default: Some("1"),
            doc: "A",
            secret: false,
        },
        SettingDoc {
            key: "b",
            default: None,
            doc: "B",
            secret: true,
        },
    ];

    #[test]
    fn drift_names_missing_extra_and_wrong_defaults() {
        assert!(drift(&json!({"a": 1, "b": null}), DOCS, &[]).is_empty());
        assert_eq!(
            drift(&json!({"a": 2, "c": true}), DOCS, &[]),
            [
                "a: documented default Some(\"1\"), code default Some(\"2\")",
                "c is not documented",
                "b is documented but not a setting"
            ]
        );
    }

    #[test]
    fn markdown_names_the_variables() {
        let md = render_markdown("API", DOCS);
        assert!(md.contains("| `POWERNODE_A` | `1` | A |"));
        assert!(md.contains("| `POWERNODE_B` | — (required) | B |"));
    }

    #[test]
    fn optional_settings_without_a_default_are_neither_required_nor_set() {
        let docs = [SettingDoc {
            key: "tls_file",
            default: Some(UNSET),
            doc: "optional file",
            secret: false,
        }];
        assert!(render_markdown("T", &docs).contains("| `POWERNODE_TLS_FILE` | — (unset) |"));
        // Commented out: copying the example leaves the variable unset, not empty.
        assert!(
            render_env("T", &docs, &[])
                .contains("# optional file (optional)\n#POWERNODE_TLS_FILE=\n")
        );
        assert!(drift(&json!({"tls_file": null}), &docs, &[]).is_empty());
    }
}
