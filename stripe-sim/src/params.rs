//! Typed reading of a parsed form, with Stripe's errors naming the full parameter
//! (`flow_data[subscription_cancel][subscription]`) when a value is missing or malformed.

use super::{
    error::{ApiError, ApiResult},
    form::FormValue,
    model::{Address, Metadata},
    state::MetadataPatch,
};

/// A view of one level of a form; `prefix` is how errors name it.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    value: &'a FormValue,
    prefix: String,
}

static EMPTY: FormValue = FormValue::Str(String::new());

impl<'a> Params<'a> {
    pub fn root(value: &'a FormValue) -> Self {
        Params {
            value,
            prefix: String::new(),
        }
    }

    /// The full name of a child parameter, as Stripe reports it.
    pub fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}[{key}]", self.prefix)
        }
    }

    fn get(&self, key: &str) -> Option<&'a FormValue> {
        self.value.get(key)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Refuses any parameter not in `known`, as Stripe does.
    pub fn allow(&self, known: &[&str]) -> ApiResult<()> {
        if let Some(map) = self.value.as_map() {
            if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(ApiError::unknown_param(&self.name(unknown)));
            }
        }
        Ok(())
    }

    /// A string parameter; a hash where a string belongs is an error.
    pub fn str(&self, key: &str) -> ApiResult<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(FormValue::Str(s)) => Ok(Some(s)),
            Some(FormValue::Map(_)) => Err(ApiError::invalid_param(
                &self.name(key),
                format!(
                    "Invalid string: {} must be a string, not a hash.",
                    self.name(key)
                ),
            )),
        }
    }

    /// A string parameter where empty means absent.
    pub fn text(&self, key: &str) -> ApiResult<Option<String>> {
        Ok(self.str(key)?.filter(|s| !s.is_empty()).map(str::to_string))
    }

    /// A string that may be cleared: absent → `None`, `key=` → `Some(None)`.
    pub fn nullable(&self, key: &str) -> ApiResult<Option<Option<String>>> {
        Ok(self
            .str(key)?
            .map(|s| Some(s.to_string()).filter(|s| !s.is_empty())))
    }

    pub fn required(&self, key: &str) -> ApiResult<&'a str> {
        self.str(key)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing_param(&self.name(key)))
    }

    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.str(key)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid_param(
                &self.name(key),
                format!("Invalid boolean: {other}"),
            )),
        }
    }

    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid_integer(&self.name(key), s)),
        }
    }

    /// A non-negative integer that fits `T`.
    pub fn uint<T: TryFrom<i64>>(&self, key: &str) -> ApiResult<Option<T>> {
        match self.int(key)? {
            None => Ok(None),
            Some(n) => T::try_from(n).map(Some).map_err(|_| {
                ApiError::invalid_param(
                    &self.name(key),
                    format!("Invalid non-negative integer: {n}"),
                )
            }),
        }
    }

    /// A nested hash (`key[x]=…`); `key=` (an empty string) counts as absent.
    pub fn child(&self, key: &str) -> ApiResult<Option<Params<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(FormValue::Str(s)) if s.is_empty() => Ok(None),
            Some(v @ FormValue::Map(_)) => Ok(Some(Params {
                value: v,
                prefix: self.name(key),
            })),
            Some(FormValue::Str(_)) => Err(ApiError::invalid_param(
                &self.name(key),
                format!("Invalid hash: {} must be a hash.", self.name(key)),
            )),
        }
    }

    /// A list of hashes (`key[0][x]=…`).
    pub fn list(&self, key: &str) -> ApiResult<Vec<Params<'a>>> {
        let Some(value) = self.get(key) else {
            return Ok(Vec::new());
        };
        if value == &EMPTY {
            return Ok(Vec::new());
        }
        let bad = || {
            ApiError::invalid_param(
                &self.name(key),
                format!("Invalid array: {} must be an array.", self.name(key)),
            )
        };
        let items = match value {
            FormValue::Map(_) => value.list().ok_or_else(bad)?,
            FormValue::Str(_) => return Err(bad()),
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                FormValue::Map(_) => Ok(Params {
                    value: v,
                    prefix: format!("{}[{i}]", self.name(key)),
                }),
                FormValue::Str(_) => Err(bad()),
            })
            .collect()
    }

    /// A list of strings (`key[0]=a&key[1]=b`, `key[]=a`, or a single `key=a`).
    pub fn strings(&self, key: &str) -> ApiResult<Vec<String>> {
        let Some(value) = self.get(key) else {
            return Ok(Vec::new());
        };
        let items = value.list().ok_or_else(|| {
            ApiError::invalid_param(
                &self.name(key),
                format!("Invalid array: {}", self.name(key)),
            )
        })?;
        items
            .into_iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::invalid_param(
                        &self.name(key),
                        format!("Invalid array: {} must hold strings.", self.name(key)),
                    )
                })
            })
            .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
            .collect()
    }

    pub fn expand(&self) -> ApiResult<Vec<String>> {
        self.strings("expand")
    }

    /// `metadata[k]=v` pairs; `metadata=` clears everything.
    pub fn metadata(&self, key: &str) -> ApiResult<Option<MetadataPatch>> {
        match self.get(key) {
            None => Ok(None),
            Some(FormValue::Str(s)) if s.is_empty() => Ok(Some(MetadataPatch {
                clear: true,
                set: Metadata::new(),
            })),
            Some(FormValue::Str(_)) => Err(ApiError::invalid_param(
                &self.name(key),
                "Invalid metadata: it must be a hash of string keys and values.",
            )),
            Some(FormValue::Map(map)) => {
                let mut set = Metadata::new();
                for (k, v) in map {
                    let Some(v) = v.as_str() else {
                        return Err(ApiError::invalid_param(
                            &format!("{}[{k}]", self.name(key)),
                            "Metadata values must be strings.",
                        ));
                    };
                    if k.len() > 40 || v.len() > 500 {
                        return Err(ApiError::invalid_param(
                            &format!("{}[{k}]", self.name(key)),
                            "Metadata keys are at most 40 characters and values at most 500.",
                        ));
                    }
                    set.insert(k.clone(), v.to_string());
                }
                if set.len() > 50 {
                    return Err(ApiError::invalid_param(
                        &self.name(key),
                        "Metadata can have at most 50 keys.",
                    ));
                }
                Ok(Some(MetadataPatch { clear: false, set }))
            }
        }
    }

    /// An address hash; `address=` clears it.
    pub fn address(&self, key: &str) -> ApiResult<Option<Option<Address>>> {
        if self.str(key).ok().flatten() == Some("") {
            return Ok(Some(None));
        }
        let Some(a) = self.child(key)? else {
            return Ok(None);
        };
        a.allow(&["line1", "line2", "city", "state", "postal_code", "country"])?;
        Ok(Some(Some(Address {
            line1: a.text("line1")?,
            line2: a.text("line2")?,
            city: a.text("city")?,
            state: a.text("state")?,
            postal_code: a.text("postal_code")?,
            country: a.text("country")?,
        })))
    }

    /// `limit` (1–100, default 10), `starting_after`, `ending_before`.
    pub fn paging(&self) -> ApiResult<(usize, Option<&'a str>, Option<&'a str>)> {
        let limit = match self.int("limit")? {
            None => 10,
            Some(n) if (1..=100).contains(&n) => usize::try_from(n).unwrap_or(10),
            Some(_) => {
                return Err(ApiError::invalid_param(
                    "limit",
                    "This value must be between 1 and 100.",
                ))
            }
        };
        Ok((
            limit,
            self.str("starting_after")?.filter(|s| !s.is_empty()),
            self.str("ending_before")?.filter(|s| !s.is_empty()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::parse;

    #[test]
    fn errors_name_the_full_parameter() {
        let f =
            parse("flow_data[type]=x&flow_data[subscription_cancel][subscription]=").expect("form");
        let p = Params::root(&f);
        let flow = p.child("flow_data").expect("ok").expect("present");
        let cancel = flow
            .child("subscription_cancel")
            .expect("ok")
            .expect("present");
        let err = cancel.required("subscription").expect_err("missing");
        assert_eq!(
            err.param.as_deref(),
            Some("flow_data[subscription_cancel][subscription]")
        );
        let err = p.allow(&["customer"]).expect_err("unknown");
        assert_eq!(err.param.as_deref(), Some("flow_data"));
    }

    #[test]
    fn typed_values() {
        let f = parse("a=true&b=12&c=x&items[0][price]=p&expand[]=customer&metadata=&limit=500")
            .expect("form");
        let p = Params::root(&f);
        assert_eq!(p.bool("a").expect("bool"), Some(true));
        assert!(p.bool("c").is_err());
        assert_eq!(p.uint::<u32>("b").expect("uint"), Some(12));
        assert!(p.int("c").is_err());
        assert_eq!(p.list("items").expect("list").len(), 1);
        assert!(p.list("c").is_err());
        assert_eq!(p.expand().expect("expand"), vec!["customer".to_string()]);
        assert!(p
            .metadata("metadata")
            .expect("metadata")
            .is_some_and(|m| m.clear));
        assert!(p.paging().is_err());
    }
}
