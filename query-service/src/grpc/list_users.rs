use prost_types::Timestamp;
use shared::{country::CountryCode, grpc_error::FieldViolations};
use shared_proto::v1::{ListUsersRequest, ListUsersResponse};
use time::OffsetDateTime;

use super::Reads;
use crate::{
    error::QueryError,
    page_token,
    read_model::PageKey,
    view::{self, Listing},
};

const DEFAULT_PAGE_SIZE: i64 = 50;
const MAX_PAGE_SIZE: i64 = 1000;
const MAX_COUNTRIES: usize = 50;
const MIN_QUERY_CHARS: usize = 2;
const MAX_QUERY_CHARS: usize = 100;

pub(super) async fn handle(
    reads: &Reads,
    request: ListUsersRequest,
) -> Result<ListUsersResponse, QueryError> {
    let mut violations = FieldViolations::new();
    let filter = request.filter.unwrap_or_default();
    let countries = violations.check("filter.countries", countries(&filter.countries));
    let updated_after = violations.check(
        "filter.updated_after",
        filter.updated_after.as_ref().map(updated_after).transpose(),
    );
    let query = violations.check("filter.query", query(&filter.query));
    let page_size = violations.check("page_size", page_size(request.page_size));
    let (Some(countries), Some(updated_after), Some(query), Some(page_size)) =
        (countries, updated_after, query, page_size)
    else {
        return Err(violations.into());
    };
    let fingerprint = page_token::fingerprint(&countries, updated_after, query.as_deref());
    let key = PageKey {
        filter: fingerprint,
        page_token: request.page_token,
        page_size,
    };
    let page_token = key.page_token.clone();
    let page = reads
        .model
        .page(key, async |pool| {
            // Checked on a read only: a page kept in memory was read with this very token.
            let after = if page_token.is_empty() {
                None
            } else {
                let Some(after) = violations.check(
                    "page_token",
                    reads.page_tokens.verify(&page_token, fingerprint),
                ) else {
                    return Err(violations.into());
                };
                Some(after)
            };
            let listing = Listing {
                countries: &countries,
                updated_after,
                query: query.as_deref(),
                after,
                // One row more than the page tells whether another page follows.
                limit: page_size + 1,
            };
            let mut rows = pool
                .run(async |client| Ok::<_, QueryError>(view::list(&*client, &listing).await?))
                .await?;
            let next_page_token = if rows.len() as i64 > page_size {
                rows.truncate(page_size as usize);
                rows.last()
                    .map(|last| reads.page_tokens.issue(fingerprint, last.user.id))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            Ok(ListUsersResponse {
                users: rows.iter().map(|row| row.user.to_proto()).collect(),
                next_page_token,
            })
        })
        .await?;
    Ok(page.as_ref().clone())
}

/// A valid protobuf Timestamp (nanos within a second) in the range the view can hold.
fn updated_after(at: &Timestamp) -> Result<OffsetDateTime, &'static str> {
    const INVALID: &str = "must be a time between the years 1 and 9999";
    if !(0..1_000_000_000).contains(&at.nanos) {
        return Err(INVALID);
    }
    shared_proto::timestamp::from_proto(at)
        .filter(|at| (1..=9999).contains(&at.year()))
        .ok_or(INVALID)
}

/// The trimmed text, or `None` when there is none.
fn query(text: &str) -> Result<Option<String>, String> {
    let query = text.trim();
    if query.is_empty() {
        return Ok(None);
    }
    let length = query.chars().count();
    if length < MIN_QUERY_CHARS {
        return Err(format!("must be at least {MIN_QUERY_CHARS} characters"));
    }
    if length > MAX_QUERY_CHARS {
        return Err(format!("must be at most {MAX_QUERY_CHARS} characters"));
    }
    if query.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(Some(query.to_owned()))
}

/// Valid codes, sorted and deduplicated so that equal filters have equal fingerprints.
fn countries(codes: &[String]) -> Result<Vec<String>, String> {
    if codes.len() > MAX_COUNTRIES {
        return Err(format!("must name at most {MAX_COUNTRIES} countries"));
    }
    let mut countries = Vec::with_capacity(codes.len());
    for code in codes {
        let country = CountryCode::parse(code).map_err(|reason| format!("`{code}` {reason}"))?;
        countries.push(country.to_string());
    }
    countries.sort();
    countries.dedup();
    Ok(countries)
}

/// AIP-158: unset means the default, over the maximum is coerced down, negative is refused.
fn page_size(requested: i32) -> Result<i64, &'static str> {
    match i64::from(requested) {
        size if size < 0 => Err("must not be negative"),
        0 => Ok(DEFAULT_PAGE_SIZE),
        size => Ok(size.min(MAX_PAGE_SIZE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_default_and_are_coerced_to_the_maximum() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(7), Ok(7));
        assert_eq!(page_size(5000), Ok(MAX_PAGE_SIZE));
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn a_query_is_trimmed_and_between_two_and_a_hundred_characters() {
        assert_eq!(query("  "), Ok(None));
        assert_eq!(query(" ad "), Ok(Some("ad".to_owned())));
        assert!(query("a").unwrap_err().contains("at least 2"));
        assert!(query(&"a".repeat(101)).unwrap_err().contains("at most 100"));
        assert!(query("a\u{0}b").is_err());
    }

    #[test]
    fn updated_after_must_be_a_time_the_view_can_hold() {
        let at = |seconds, nanos| Timestamp { seconds, nanos };
        assert!(updated_after(&at(1_700_000_000, 5)).is_ok());
        assert!(updated_after(&at(i64::MAX, 0)).is_err());
        assert!(updated_after(&at(0, -1)).is_err());
        assert!(updated_after(&at(-70_000_000_000, 0)).is_err());
    }

    #[test]
    fn country_filters_are_validated_sorted_and_deduplicated() {
        let codes = ["GB".to_owned(), "FR".to_owned(), "GB".to_owned()];
        assert_eq!(countries(&codes).unwrap(), ["FR", "GB"]);
        assert!(countries(&["XX".to_owned()]).unwrap_err().contains("`XX`"));
        assert!(countries(&vec!["GB".to_owned(); 51]).is_err());
    }
}
