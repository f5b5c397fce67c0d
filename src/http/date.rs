//! The `Date` header value, cached per core and formatted at most once a second.

use std::cell::RefCell;

use crate::timestamp;

/// Per-core cache of the `Date` header value, reformatted at most once a second.
#[derive(Default)]
pub struct DateCache {
    /// (Unix second it was formatted for, IMF-fixdate text).
    cached: RefCell<(i64, [u8; timestamp::HTTP_DATE_LEN])>,
}

impl DateCache {
    /// The `Date` value at `now_us` (from [`timestamp::now_us`]), for a caller that has read
    /// the clock already.
    pub fn at(&self, now_us: i64) -> [u8; timestamp::HTTP_DATE_LEN] {
        let now_s = now_us.div_euclid(1_000_000);
        let mut cached = self.cached.borrow_mut();
        if cached.0 != now_s || cached.1[0] == 0 {
            *cached = (now_s, timestamp::format_http_date(now_s));
        }
        cached.1
    }
}
