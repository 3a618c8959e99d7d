//! iCalendar (RFC 5545) export of final shifts. (Filled in below.)
