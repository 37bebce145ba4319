//! Integration tests of `moat-scan`, in one binary (one link instead of one per file).

mod support;

mod fixture_home;
mod live;
mod live_env;
mod live_paging;
mod report_schema;
mod sarif;
