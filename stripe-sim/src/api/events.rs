//! Events (`/v1/events`): retrieve, and list with Stripe's filters (`type`, `types`,
//! `created`, `delivery_success`).

use serde_json::Value;

use super::allow_list;
use crate::{
    error::{ApiError, ApiResult},
    model::State,
    params::Params,
    render::list_page,
};

pub(super) fn list_events(st: &State, p: &Params) -> ApiResult<Value> {
    allow_list(p, &["type", "types", "delivery_success"])?;
    let kind = p.text("type")?;
    let types = p.strings("types")?;
    if kind.is_some() && !types.is_empty() {
        return Err(ApiError::invalid_param(
            "types",
            "You may not specify both `type` and `types`.",
        ));
    }
    if types.len() > 20 {
        return Err(ApiError::invalid_param(
            "types",
            "You may not specify more than 20 types.",
        ));
    }
    let created = CreatedRange::read(p)?;
    let delivery_success = p.bool("delivery_success")?;
    // Events some endpoint has not (yet) taken: pending, or given up on. Duplicates sent
    // on purpose by the chaos options do not count.
    let undelivered: std::collections::HashSet<&str> = match delivery_success {
        None => Default::default(),
        Some(_) => st
            .deliveries
            .iter()
            .filter(|d| !d.delivered && !d.duplicate)
            .map(|d| d.event_id.as_str())
            .collect(),
    };
    let matches = |t: &str| match &kind {
        // `type` may end in `.*` to match a family, as Stripe allows.
        Some(k) => match k.strip_suffix('*') {
            Some(prefix) => t.starts_with(prefix),
            None => t == k,
        },
        None => types.is_empty() || types.iter().any(|x| x == t),
    };
    // `starting_after` is a place in the list, as Stripe's cursors are: it holds even when
    // that event no longer matches the filters (delivered meanwhile, say).
    let (limit, after, before) = p.paging()?;
    let newest_first = st.events.iter().rev();
    let skip = match after {
        Some(id) => match st.events.iter().rev().position(|e| e.id == id) {
            Some(i) => i + 1,
            None => return Err(ApiError::no_such("event", id, "starting_after")),
        },
        None => 0,
    };
    let items = newest_first
        .skip(skip)
        .filter(|e| matches(&e.type_))
        .filter(|e| created.contains(e.created))
        .filter(|e| delivery_success.is_none_or(|ok| ok != undelivered.contains(e.id.as_str())))
        .map(|e| (e.id.clone(), st.event_json(e)))
        .collect();
    Ok(list_page("/v1/events", items, limit, None, before))
}

/// `created=…` or `created[gt|gte|lt|lte]=…`, as Stripe's list filters take it.
#[derive(Debug, Default, Clone, Copy)]
struct CreatedRange {
    gt: Option<i64>,
    gte: Option<i64>,
    lt: Option<i64>,
    lte: Option<i64>,
}

impl CreatedRange {
    fn read(p: &Params) -> ApiResult<CreatedRange> {
        if p.child("created").is_err() {
            // A plain `created=<ts>`: exactly that second.
            let at = p.int("created")?;
            return Ok(CreatedRange {
                gte: at,
                lte: at,
                ..CreatedRange::default()
            });
        }
        let Some(range) = p.child("created")? else {
            return Ok(CreatedRange::default());
        };
        range.allow(&["gt", "gte", "lt", "lte"])?;
        Ok(CreatedRange {
            gt: range.int("gt")?,
            gte: range.int("gte")?,
            lt: range.int("lt")?,
            lte: range.int("lte")?,
        })
    }

    fn contains(&self, t: i64) -> bool {
        self.gt.is_none_or(|b| t > b)
            && self.gte.is_none_or(|b| t >= b)
            && self.lt.is_none_or(|b| t < b)
            && self.lte.is_none_or(|b| t <= b)
    }
}

/// `GET /v1/events/{id}`.
pub(super) fn retrieve_event(st: &State, id: &str, p: &Params) -> ApiResult<Value> {
    p.allow(&["expand"])?;
    st.event(id)
        .map(|e| st.event_json(e))
        .ok_or_else(|| ApiError::no_such("event", id, "id"))
}
