//! How a classical stage owns its part of the configuration: [`Configure`], implemented beside
//! each stage's code, says which field of `ClassicalConfig` the stage has (its [`Configure::Slot`]),
//! which `key=value` settings it reads into it, how the field is validated and whether it turns
//! the stage on. `pipeline::stages` generates `ClassicalConfig`'s stage fields and its key
//! dispatch from that list, so adding a stage touches no shared configuration code.
//!
//! The value parsers here ([`num`], [`flag`], [`is_none`], [`count_or_none`]) are the ones every
//! key uses, so `train`'s flags and `compare`'s specs read values the same way.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// What a stage made of one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// Not one of the stage's keys.
    Unknown,
    /// Applied.
    Set,
    /// One of the stage's keys, but it refines the stage, which is not configured; the name is
    /// the key's, for the error.
    Needs(&'static str),
}

/// A stage's part of the classical configuration.
pub trait Configure: Sized {
    /// The configuration field of the stage (an `Option` of its parameters, a flag, ...); its
    /// default turns the stage off.
    type Slot: Debug + Clone + PartialEq + Default + Serialize + DeserializeOwned;

    /// The stage's keys, for error messages; the first names the stage (`needs pca`).
    const KEYS: &'static [&'static str];

    /// Keys (aliases included) that refine a stage set by another key: applied after all
    /// others, whatever order they were given in.
    const REFINES: &'static [&'static str] = &[];

    /// Apply `key` (lower case, `-` between words) set to `v`. Every stage sees `seed`; one that
    /// has a seed takes it.
    fn set(slot: &mut Self::Slot, key: &str, v: &str) -> Result<Setting>;

    /// The configured stage, if the field turns it on.
    fn plan(slot: &Self::Slot) -> Option<Self>;

    /// Check the field's parameters.
    fn validate(_slot: &Self::Slot) -> Result<()> {
        Ok(())
    }

    /// Fit the field to training data of `rows` feature rows, where a setting cannot apply as
    /// given (more Nystroem landmarks than rows): change it to what the fit will do, so that
    /// the model's stored configuration says what it did, and say so (a note for the user).
    fn fit_to(_slot: &mut Self::Slot, _rows: usize) -> Option<String> {
        None
    }
}

/// Split a spec `a=1,b=2,3,c=x` into `[(a, 1), (b, "2,3"), (c, x)]` (a token without `=`
/// continues the previous value). A key given twice (case and `_`/`-` aside) is an error naming
/// it: a spec that says two things is a mistake, not "the last one wins".
pub fn pairs(spec: &str, what: &'static str) -> Result<Vec<(String, String)>> {
    let norm = |k: &str| k.to_ascii_lowercase().replace('_', "-");
    let mut out: Vec<(String, String)> = Vec::new();
    for tok in spec.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match tok.split_once('=') {
            Some((k, v)) => {
                let k = k.trim();
                if out.iter().any(|(o, _)| norm(o) == norm(k)) {
                    return Err(Error::param(
                        what,
                        format!("`{k}` is given twice in one spec"),
                        spec,
                    ));
                }
                out.push((k.to_string(), v.trim().to_string()))
            }
            None => match out.last_mut() {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(tok);
                }
                None => return Err(Error::param(what, "expected key=value,...", tok)),
            },
        }
    }
    Ok(out)
}

/// Parse a number.
pub fn num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T> {
    v.trim()
        .parse()
        .map_err(|_| Error::param(key, "expected a number", v))
}

/// Parse `true`/`false` (`yes`/`no`, `on`/`off`, `1`/`0`; empty is `true`).
pub fn flag(key: &'static str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(Error::param(key, "expected true or false", v)),
    }
}

/// `none` or `off`: drop the stage.
pub fn is_none(v: &str) -> bool {
    v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("off")
}

/// A count, or `None` for `none` / `off`.
pub fn count_or_none(key: &'static str, v: &str) -> Result<Option<usize>> {
    if is_none(v) {
        Ok(None)
    } else {
        num(key, v).map(Some)
    }
}

/// Set the seed of an optional stage, if it is configured.
pub fn seed_of(seed: Option<&mut u64>, v: &str) -> Result<Setting> {
    match seed {
        Some(s) => {
            *s = num("seed", v)?;
            Ok(Setting::Set)
        }
        None => Ok(Setting::Unknown),
    }
}
