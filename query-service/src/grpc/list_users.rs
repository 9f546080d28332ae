use shared::{country::CountryCode, grpc_error::FieldViolations};
use shared_proto::v1::{ListUsersRequest, ListUsersResponse};

use super::Reads;
use crate::{error::QueryError, page_token, read_model::PageKey, view};

const DEFAULT_PAGE_SIZE: i64 = 50;
const MAX_PAGE_SIZE: i64 = 1000;
const MAX_COUNTRIES: usize = 50;

pub(super) async fn handle(
    reads: &Reads,
    request: ListUsersRequest,
) -> Result<ListUsersResponse, QueryError> {
    let mut violations = FieldViolations::new();
    let countries = violations.check(
        "filter.countries",
        countries(
            request
                .filter
                .as_ref()
                .map(|f| f.countries.as_slice())
                .unwrap_or_default(),
        ),
    );
    let page_size = violations.check("page_size", page_size(request.page_size));
    let (Some(countries), Some(page_size)) = (countries, page_size) else {
        return Err(violations.into());
    };
    let filter = page_token::fingerprint(&countries);
    let key = PageKey {
        filter,
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
                let Some(after) =
                    violations.check("page_token", reads.page_tokens.verify(&page_token, filter))
                else {
                    return Err(violations.into());
                };
                Some(after)
            };
            // One row more than the page tells whether another page follows.
            let mut rows = pool
                .run(async |client| {
                    Ok::<_, QueryError>(
                        view::list(&*client, &countries, after, page_size + 1).await?,
                    )
                })
                .await?;
            let next_page_token = if rows.len() as i64 > page_size {
                rows.truncate(page_size as usize);
                rows.last()
                    .map(|last| reads.page_tokens.issue(filter, last.user.id))
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
    fn country_filters_are_validated_sorted_and_deduplicated() {
        let codes = ["GB".to_owned(), "FR".to_owned(), "GB".to_owned()];
        assert_eq!(countries(&codes).unwrap(), ["FR", "GB"]);
        assert!(countries(&["XX".to_owned()]).unwrap_err().contains("`XX`"));
        assert!(countries(&vec!["GB".to_owned(); 51]).is_err());
    }
}
