//! ThingsBoard's paged listings: `pageSize`, `page` (from 0), `textSearch`, `sortOrder`, and
//! the totals of a `PageData` answer.

use gatehouse_core::service::PageRequest;

use super::error::{TbError, TbResult};

/// The core's page for ThingsBoard's `pageSize` (1–1000) and `page` (from 0).
pub fn page_request(page_size: u64, page: u64) -> TbResult<PageRequest> {
    if page_size == 0 || page_size > PageRequest::MAX_ROWS {
        return Err(TbError::bad_request("pageSize must be between 1 and 1000"));
    }
    // ThingsBoard's pages count from 0; the core's from 1.
    page.checked_add(1)
        .and_then(|number| PageRequest::new(Some(number), Some(page_size)).ok())
        .ok_or_else(|| TbError::bad_request("page is too large"))
}

/// Whether `sortOrder` (`ASC`, the default, or `DESC`, in any case) is descending.
pub fn descending(sort_order: Option<&str>) -> TbResult<bool> {
    match sort_order.map(str::to_ascii_uppercase).as_deref() {
        None | Some("ASC") => Ok(false),
        Some("DESC") => Ok(true),
        Some(_) => Err(TbError::bad_request("sortOrder must be ASC or DESC")),
    }
}

/// `textSearch`: at most 256 characters without control characters; empty means none.
pub fn text_search(text: Option<String>) -> TbResult<Option<String>> {
    if text
        .as_deref()
        .is_some_and(|text| text.chars().count() > 256 || text.chars().any(char::is_control))
    {
        return Err(TbError::bad_request(
            "textSearch must be at most 256 characters without control characters",
        ));
    }
    Ok(text.filter(|text| !text.is_empty()))
}

/// The totals of a `PageData`: (totalPages, hasNext) for `total` entries.
pub fn totals(total: u64, page: PageRequest) -> (u64, bool) {
    let total_pages = total.div_ceil(page.rows_per_page);
    (total_pages, page.page_number < total_pages)
}
