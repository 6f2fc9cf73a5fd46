//! A study design file (TOML): a title and question, options every arm shares, reduced options
//! for CPU adapters, and the arms, each a question and the `bitgrok sweep` options that answer
//! it. Option names and values are those of `sweep` without the dashes, e.g.
//! `weights = "f32,ternary,binary"` or `p = 113`; a later table replaces an earlier one's
//! option (common, then the arm's, then with `--reduced` the common and the arm's reduced ones).

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

/// Most bytes a design file may take.
const MAX_DESIGN_BYTES: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Design {
    pub title: String,
    pub question: String,
    /// Options of every arm.
    #[serde(default)]
    pub options: toml::Table,
    /// Options of every arm with `--reduced`.
    #[serde(default)]
    pub reduced: toml::Table,
    #[serde(rename = "arm")]
    pub arms: Vec<Arm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Its directory's name: lower-case letters, digits and dashes.
    pub name: String,
    pub question: String,
    #[serde(default)]
    pub options: toml::Table,
    #[serde(default)]
    pub reduced: toml::Table,
}

impl Design {
    pub fn read(path: &Path) -> Result<Design> {
        if !path.is_file() {
            crate::usage_bail!("{}: no such design file", path.display());
        }
        let text = crate::bounded_read::read_to_string(path, MAX_DESIGN_BYTES, "a design")?;
        let design: Design = match toml::from_str(&text) {
            Ok(d) => d,
            Err(e) => crate::usage_bail!(
                "{}: {}",
                path.display(),
                e.to_string().lines().collect::<Vec<_>>().join(" ")
            ),
        };
        if design.arms.is_empty() {
            crate::usage_bail!("{}: the design has no [[arm]]", path.display());
        }
        for (i, arm) in design.arms.iter().enumerate() {
            let valid = !arm.name.is_empty()
                && arm
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                crate::usage_bail!(
                    "{}: arm name {:?}: use lower-case letters, digits and dashes",
                    path.display(),
                    arm.name
                );
            }
            if design.arms[..i].iter().any(|a| a.name == arm.name) {
                crate::usage_bail!("{}: two arms are named {:?}", path.display(), arm.name);
            }
        }
        Ok(design)
    }

    /// The arm's options as `sweep` arguments (`--name value`, or `--name` alone for `true`).
    pub fn arm_args(&self, arm: &Arm, reduced: bool) -> Result<Vec<String>> {
        let mut merged = self.options.clone();
        let mut layers = vec![&arm.options];
        if reduced {
            layers.extend([&self.reduced, &arm.reduced]);
        }
        for layer in layers {
            merged.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut args = Vec::new();
        for (name, value) in &merged {
            let text =
                value_text(value).with_context(|| format!("arm {:?}: option {name}", arm.name))?;
            args.push(format!("--{name}"));
            if let Some(text) = text {
                args.push(text);
            }
        }
        Ok(args)
    }
}

/// An option's value as the command line writes it; None for a flag (`true`).
fn value_text(value: &toml::Value) -> Result<Option<String>> {
    use toml::Value;
    Ok(Some(match value {
        Value::String(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Boolean(true) => return Ok(None),
        Value::Array(items) => {
            let texts = items
                .iter()
                .map(|v| match v {
                    Value::Array(_) | Value::Table(_) | Value::Boolean(_) => {
                        Err(crate::error::UsageError("a list holds numbers or words".into()).into())
                    }
                    v => value_text(v).map(|t| t.unwrap_or_default()),
                })
                .collect::<Result<Vec<_>>>()?;
            texts.join(",")
        }
        Value::Boolean(false) | Value::Table(_) | Value::Datetime(_) => {
            crate::usage_bail!(
                "write a value (a word, a number or a list of them), or true for a flag"
            )
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_tables_replace_earlier_options() {
        let design: Design = toml::from_str(
            r#"
            title = "t"
            question = "q"
            [options]
            p = 113
            seeds = "0-15"
            lr = [0.001, 0.003]
            [reduced]
            p = 23
            [[arm]]
            name = "precision"
            question = "q1"
            options = { weights = "f32,ternary", seeds = "0-3", pos-embed = "off" }
            reduced = { frac = 0.7 }
            "#,
        )
        .unwrap();
        let arm = &design.arms[0];
        let args = |reduced| design.arm_args(arm, reduced).unwrap().join(" ");
        assert_eq!(
            args(false),
            "--lr 0.001,0.003 --p 113 --pos-embed off --seeds 0-3 --weights f32,ternary"
        );
        assert_eq!(
            args(true),
            "--frac 0.7 --lr 0.001,0.003 --p 23 --pos-embed off --seeds 0-3 --weights f32,ternary"
        );
    }
}
