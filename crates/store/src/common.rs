//! Small helpers both backends share: how multi-row statements are chunked,
//! how list limits are clamped, and integer conversions at the SQL boundary.
//! Nothing here talks to a database.

/// Largest number of rows in one multi-row statement. The widest row we
/// bind has 13 columns (a read-model row), so a chunk binds at most 6,656
/// parameters: well below SQLite's limit (32,766 in the bundled build)
/// and PostgreSQL's (65,535).
pub(crate) const MAX_CHUNK_ROWS: usize = 512;

/// Default page size of `list_summaries` when the filter says 0.
const DEFAULT_LIST_LIMIT: u32 = 100;
/// Upper bound of one page of `list_summaries`, so one request cannot make
/// the store materialise the whole read model.
const MAX_LIST_LIMIT: u32 = 1000;

/// Splits `items` into chunks whose lengths are powers of two, largest first,
/// none longer than [`MAX_CHUNK_ROWS`].
///
/// Every multi-row statement text depends on its row count, and each distinct
/// text is prepared and cached separately per connection. Cutting batches
/// into powers of two means ten statement texts per table cover every batch
/// size, so they stay in the statement cache instead of each batch preparing
/// (and evicting) a fresh one.
pub(crate) fn pow2_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = (1usize << rest.len().ilog2()).min(MAX_CHUNK_ROWS);
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// The effective LIMIT of a summary listing: 0 means the default, anything
/// above the cap is cut to the cap.
pub(crate) fn list_limit(requested: u32) -> i64 {
    let limit = match requested {
        0 => DEFAULT_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    };
    i64::from(limit)
}

/// A length as an SQL integer. Lengths of in-memory vectors cannot exceed
/// `i64::MAX` on any platform Rust supports, so saturating never triggers.
pub(crate) fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

pub(crate) fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_and_cover_everything() {
        for n in [0usize, 1, 2, 3, 7, 8, 511, 512, 513, 1000, 1500] {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = pow2_chunks(&items).collect();
            assert!(
                chunks
                    .iter()
                    .all(|c| c.len().is_power_of_two() && c.len() <= MAX_CHUNK_ROWS)
            );
            let flat: Vec<usize> = chunks.concat();
            assert_eq!(flat, items, "n = {n}");
        }
    }

    #[test]
    fn list_limit_defaults_and_caps() {
        assert_eq!(list_limit(0), 100);
        assert_eq!(list_limit(7), 7);
        assert_eq!(list_limit(5000), 1000);
    }
}
